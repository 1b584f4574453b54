"""resolve_model: one function from a model reference (a registered name, a spec file, a checkpoint
or run folder) to a model and what describes it; which options each kind takes."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn.tools.spec import SpecError, load_spec
from minicnn.train import CheckpointError, load_checkpoint, resolve_model, save_checkpoint
from minicnn.train.models import reference_kind

SPEC = Path(__file__).resolve().parents[2] / "examples" / "lenet5.toml"


def outputs(model) -> tuple:
    with mc.no_grad():
        return model(mc.tensor(np.zeros((1, 1, 28, 28), np.float32))).shape


def test_a_registered_name_is_built_by_its_factory_options_over_defaults():
    model, meta = resolve_model("lenet5", defaults={"num_classes": 10, "in_channels": 1}, num_classes=3)
    assert outputs(model) == (1, 3) and model.training
    assert meta == {"model": "lenet5", "model_options": {"num_classes": 3, "in_channels": 1}, "input_size": (1, 28, 28)}
    with pytest.raises(mc.RegistryError, match="did you mean 'lenet5'"):
        resolve_model("lenett")


def test_a_spec_fixes_its_layers_ignores_defaults_and_refuses_options():
    model, meta = resolve_model(str(SPEC), defaults={"num_classes": 7})
    assert outputs(model) == (1, 10) and model.num_parameters() == 61_706
    assert meta == {"model": str(SPEC), "spec": load_spec(SPEC)[0], "input_size": (1, 28, 28)}
    assert resolve_model(SPEC, num_classes=None)[1]["spec"] == meta["spec"]  # options left unset are no options
    with pytest.raises(SpecError, match=r"model spec '.*lenet5.toml' takes no arguments \(num_classes\)"):
        resolve_model(str(SPEC), num_classes=3)


@pytest.mark.parametrize("target", ["best.safetensors", ""], ids=["checkpoint", "run-folder"])
def test_a_checkpoint_or_its_run_folder_gives_the_trained_model_in_eval_mode(trained_lenet, target):
    out, _ = trained_lenet
    model, meta = resolve_model(out / target)
    best = load_checkpoint(out / "best.safetensors")
    assert not model.training and meta == best.meta and meta["classes"] == [str(d) for d in range(10)]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, best.model[name], err_msg=name)
    with pytest.raises(CheckpointError, match="holds a trained model and takes no arguments"):
        resolve_model(out, num_classes=3)


def test_a_checkpoint_with_a_nan_weight_is_refused_naming_it(trained_lenet, tmp_path):
    out, _ = trained_lenet
    best = load_checkpoint(out / "best.safetensors")
    best.model["features.0.weight"] = np.full_like(best.model["features.0.weight"], np.nan)
    save_checkpoint(tmp_path / "nan.safetensors", best.model, best.optimizer, best.meta)
    with pytest.raises(CheckpointError, match="weight 'features.0.weight' holds NaN or infinite values"):
        resolve_model(tmp_path / "nan.safetensors")


def test_which_kind_a_reference_is(tmp_path):
    with zipfile.ZipFile(tmp_path / "weights", "w"):  # an earlier version's checkpoint renamed without its .npz
        pass
    mc.save({"w": np.zeros(2)}, tmp_path / "trained")  # safetensors without its suffix
    (tmp_path / "net").write_text("[[layers]]\n")  # a spec without its .toml
    found = {str(ref): reference_kind(ref) for ref in
             (tmp_path, tmp_path / "gone.npz", tmp_path / "gone.safetensors", tmp_path / "weights", tmp_path / "trained",
              tmp_path / "net", "net.toml", "lenet5")}
    assert list(found.values()) == ["checkpoint"] * 5 + ["spec", "spec", "name"]
    assert reference_kind(tmp_path / "gone.npz", accept=("spec", "name")) == "name"
    assert reference_kind("lenet5", accept=("checkpoint",)) == "checkpoint"


def test_accepting_only_checkpoints_takes_a_name_as_a_missing_file():
    with pytest.raises(CheckpointError, match="checkpoint lenet5 not found"):
        resolve_model("lenet5", accept=("checkpoint",))
