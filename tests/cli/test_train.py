"""`minicnn train`, `evaluate` and `predict`: the output of a short run, and one error line with a
non-zero exit code (never a traceback) for every kind of bad input."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from minicnn import backend, data
from minicnn.cli import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror


def flat(text: str) -> str:
    """The output with its line wrapping undone (the console wraps at 80 columns when not a terminal)."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`minicnn train lenet5 --dataset digits --epochs 2 --seed 0 --out DIR`: (result, DIR)."""
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "2", "--seed", "0",
                                     "--out", str(out)])
    return result, out


def assert_fails(result, code: int, *fragments: str):
    """A clean failure: the exit code, an `error:` line naming each fragment, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.lstrip().startswith("error:") and "Traceback" not in result.output
    for fragment in fragments:
        assert flat(fragment) in flat(result.output), result.output


def test_train_prints_each_epoch_and_where_the_run_is(run):
    result, out = run
    assert result.exit_code == 0, result.output
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        line = (rf"epoch{m['epoch']}loss{m['train_loss']:.4f}acc[0-9.]+%\|testloss{m['test_loss']:.4f}"
                rf"acc{m['test_accuracy']:.2%}\|[0-9]+s[0-9,]+img/s")
        assert re.search(line, flat(result.output)), result.output
    assert flat(f"on digits: test accuracy {metrics[-1]['test_accuracy']:.2%}") in flat(result.output)
    assert flat(f"run saved in {out}") in flat(result.output)
    assert {"config.json", "metrics.jsonl", "last.npz", "best.npz"} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize("target", ["best.npz", ""], ids=["checkpoint", "run-folder"])
def test_evaluate_prints_the_accuracy(run, target):
    _, out = run
    best = max(json.loads(line)["test_accuracy"] for line in (out / "metrics.jsonl").read_text().splitlines())
    result = runner.invoke(app, ["evaluate", str(out / target)])
    assert result.exit_code == 0, result.output
    assert flat(f"digits test set, 359 images: accuracy {best:.2%}") in flat(result.output)
    as_json = json.loads(runner.invoke(app, ["evaluate", str(out / target), "--json"]).output)
    assert as_json["test_accuracy"] == best and as_json["images"] == 359


def test_predict_prints_class_and_probability(run, tmp_path):
    _, out = run
    test_set = data.load_dataset("digits", "test")
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, image in zip(paths, test_set.images[:2]):
        Image.fromarray(image[0]).save(path)
    result = runner.invoke(app, ["predict", str(out / "best.npz"), *map(str, paths)])
    assert result.exit_code == 0, result.output
    for path in paths:
        assert re.search(rf"{re.escape(flat(str(path)))}:[0-9]\([0-9]+\.[0-9]%\)", flat(result.output)), result.output
    rows = json.loads(runner.invoke(app, ["predict", str(out / "best.npz"), *map(str, paths), "--json"]).output)
    assert [row["image"] for row in rows] == [str(p) for p in paths]
    assert all(row["class"] in [str(d) for d in range(10)] and 0 < row["probability"] <= 1 for row in rows)


def test_resume_of_a_finished_run_has_nothing_left_to_train(run):
    _, out = run
    result = runner.invoke(app, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing left to train" in result.output


def test_an_unknown_model_suggests_a_name(tmp_path):
    result = runner.invoke(app, ["train", "lenett", "--dataset", "digits", "--out", str(tmp_path / "run")])
    assert_fails(result, 2, "did you mean 'lenet5'")


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a usable GPU")
def test_cuda_without_a_gpu(tmp_path):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--device", "cuda", "--out", str(tmp_path / "r")])
    assert_fails(result, 2, "cuda")
    assert not (tmp_path / "r").exists()


def test_the_train_options_default_to_the_config_s_defaults():
    from dataclasses import fields

    from typer.main import get_command

    from minicnn.train import TrainConfig
    from minicnn.train.config import default

    options = {p.name: p.default for p in get_command(app).commands["train"].params}
    shared = [f.name for f in fields(TrainConfig) if f.name in options]
    assert len(shared) == 14 and {name: options[name] for name in shared} == {name: default(name) for name in shared}


def test_an_unknown_optimizer(tmp_path):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--optimizer", "nosuch", "--out", str(tmp_path / "r")])
    assert_fails(result, 1, "unknown optimizer 'nosuch'", "sgd or adam")


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    assert_fails(runner.invoke(app, ["train", "--resume", str(tmp_path)]), 1, "not a minicnn run folder")


def test_training_into_a_folder_holding_a_run(run):
    _, out = run
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--out", str(out)])
    assert_fails(result, 1, "already holds a run", f"--resume {out}")


def test_a_folder_in_use_by_a_run_is_refused_naming_the_pid(run):
    from minicnn.train.run_folder import RunFolder

    _, out = run
    with RunFolder(out).claim_existing():
        for arguments in (["--resume", str(out)], ["lenet5", "--dataset", "digits", "--out", str(out), "--overwrite"]):
            assert_fails(runner.invoke(app, ["train", *arguments]), 1, f"{out} is in use by another minicnn run",
                         f"PID {os.getpid()}")


def short_run(*arguments):
    return runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--limit-train", "64",
                               "--seed", "0", *arguments])


def test_overwrite_replaces_a_run_but_never_a_folder_that_is_not_one(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my settings")
    for extra in ([], ["--overwrite"]):
        assert_fails(short_run("--out", str(mine), *extra), 1, "holds no minicnn run (config.json)", "choose another --out")
    assert [p.name for p in mine.iterdir()] == ["config.json"] and (mine / "config.json").read_text() == "my settings"
    out = tmp_path / "run"
    assert short_run("--out", str(out)).exit_code == 0
    assert_fails(short_run("--out", str(out), "--seed", "1"), 1, "already holds a run", "--overwrite")
    result = short_run("--out", str(out), "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert_fails(runner.invoke(app, ["train", "--resume", str(out), "--overwrite"]), 1, "pass one of them")


def test_the_summary_after_a_resume_gives_the_best_accuracy_of_the_whole_run(tmp_path, monkeypatch):
    import minicnn.train.trainer as trainer_module

    out = tmp_path / "run"
    monkeypatch.setattr(trainer_module, "evaluate", lambda model, loader, device: (1.0, 0.9))
    assert short_run("--out", str(out)).exit_code == 0
    settings = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**settings, "epochs": 2}))
    monkeypatch.setattr(trainer_module, "evaluate", lambda model, loader, device: (1.0, 0.5))
    result = runner.invoke(app, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert flat("test accuracy 50.00% (best 90.00%)") in flat(result.output)
    assert flat("nothing left to train (best 90.00%)") in flat(runner.invoke(app, ["train", "--resume", str(out)]).output)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_weights_that_became_nan_are_not_saved_and_the_run_fails(tmp_path):
    result = short_run("--out", str(tmp_path / "r"), "--lr", "1e39", "--batch-size", "64")  # one step of epoch 1
    assert_fails(result, 1, "became NaN or infinite during epoch 1 (the loss was still finite)", "--lr")
    assert "NonFiniteWeightsError" not in result.output and "--debug" not in result.output  # a known error
    assert not (tmp_path / "r" / "best.npz").exists() and not (tmp_path / "r" / "last.npz").exists()


@pytest.mark.parametrize("content", [b"not a checkpoint", None], ids=["corrupt", "missing"])
def test_evaluate_of_a_bad_checkpoint(tmp_path, content):
    path = tmp_path / "best.npz"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["evaluate", str(path)])
    assert_fails(result, 1, str(path), "not a minicnn checkpoint" if content else "not found")


def test_evaluate_of_a_truncated_checkpoint(run, tmp_path):
    _, out = run
    path = tmp_path / "cut.npz"
    path.write_bytes((out / "best.npz").read_bytes()[:5000])
    assert_fails(runner.invoke(app, ["evaluate", str(path)]), 1, "corrupt or truncated")


def test_predict_of_a_missing_image(run, tmp_path):
    _, out = run
    result = runner.invoke(app, ["predict", str(out / "best.npz"), str(tmp_path / "nothing.png")])
    assert_fails(result, 1, "nothing.png", "not found")


def test_predict_of_a_file_that_is_not_an_image(run, tmp_path):
    _, out = run
    (tmp_path / "text.png").write_text("hello")
    assert_fails(runner.invoke(app, ["predict", str(out / "best.npz"), str(tmp_path / "text.png")]), 1, "not a readable image")


def test_mnist_offline_names_what_was_tried_and_does_not_fall_back(tmp_path, offline):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for fragment in ("dataset 'mnist' is not available", "unreachable", os.environ["MINICNN_MIRROR"].rstrip("/"), str(offline)):
        assert flat(fragment) in flat(result.output), result.output
    assert "digits" not in result.output and "run saved in" not in result.output
    assert "DataUnavailableError" not in result.output and "--debug" not in result.output  # a known error, not a crash
    assert not (tmp_path / "r" / "last.npz").exists()


def test_no_dataset_offline_falls_back_to_digits_with_a_note(tmp_path, offline):
    result = runner.invoke(app, ["train", "lenet5", "--epochs", "1", "--limit-train", "300", "--seed", "0",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    for fragment in ("note:", "dataset 'mnist' is not available", "Training on the bundled 'digits' dataset instead",
                     "done in", "on digits"):
        assert flat(fragment) in flat(result.output), result.output
    assert np.isfinite(json.loads((tmp_path / "r" / "metrics.jsonl").read_text())["test_loss"])




def test_without_a_c_compiler_training_warns_in_one_line_and_runs(tmp_path, monkeypatch):
    from minicnn.kernels import native

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path / "kernels"))
    native._load.cache_clear()
    try:
        result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--limit-train", "64",
                                     "--seed", "0", "--out", str(tmp_path / "r")])
    finally:
        monkeypatch.undo()
        native._load.cache_clear()
    assert result.exit_code == 0, result.output
    assert flat("warning: minicnn: the C kernels were not built") in flat(result.output), result.output
    assert "native.py" not in result.output and "NativeBuildWarning" not in result.output
    assert (tmp_path / "r" / "last.npz").exists()


@pytest.mark.parametrize(
    "option, value, fragment",
    [("--lr", "nan", "lr (--lr) must be a finite number >= 0, got nan"),
     ("--lr", "inf", "lr (--lr) must be a finite number >= 0, got inf"),
     ("--weight-decay", "-inf", "weight_decay (--weight-decay) must be a finite number >= 0"),
     ("--limit-train", "0", "limit_train (--limit-train) must be a whole number >= 1, got 0"),
     ("--limit-train", "-5", "limit_train (--limit-train) must be a whole number >= 1, got -5"),
     ("--optimizer", "sdg", "unknown optimizer 'sdg': use sgd or adam")],
)
def test_a_setting_that_cannot_work_is_refused_before_any_work(tmp_path, option, value, fragment):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--out", str(out), option, value])
    assert_fails(result, 1, fragment)
    assert not out.exists()


def test_a_spec_whose_outputs_are_not_the_classes_is_refused_naming_both_numbers(tmp_path):
    spec = tmp_path / "wide.toml"
    spec.write_text('[[layers]]\ntype = "Flatten"\n\n[[layers]]\ntype = "Linear"\nin_features = 784\n'
                    'out_features = 37\n', encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(spec), "--dataset", "digits", "--out", str(out)])
    assert_fails(result, 1, "gives 37 outputs per image (its last layer, '1' (Linear))", "has 10 classes")
    assert not (out / "last.npz").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_checkpoint_with_nan_weights_is_refused(run, tmp_path, command):
    _, out = run
    with np.load(out / "best.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    name = next(n for n in arrays if n.startswith("model/") and n.endswith("weight"))
    arrays[name] = np.full_like(arrays[name], np.nan)
    broken = tmp_path / "nan.npz"
    np.savez(broken, **arrays)
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    result = runner.invoke(app, [command, str(broken)] + ([str(image)] if command == "predict" else []))
    assert_fails(result, 1, f"weight '{name[len('model/'):]}' holds NaN or infinite values")
