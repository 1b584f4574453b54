"""The example third-party plugin (examples/example-plugin), installed the way a user installs it:
pip builds it and installs it, not editable, into a fresh folder. minicnn must find it through the
CLI and the API, build its model and train it, train with its optimizer from the CLI, and pass
`minicnn check` on its layer and model; the deliberately broken plugin (examples/broken-plugin),
installed beside it, must break nothing.
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import minicnn as mc
import minicnn.functional as F
from minicnn.cli import app
from minicnn.tools.conformance import check
from minicnn.train import load_checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLUGIN_MODULES = ("minicnn_example_plugin", "minicnn_broken_plugin")


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """A folder holding both example plugins, built and installed by pip (once per test session)."""
    work = tmp_path_factory.mktemp("plugins")
    sources = []
    for name in ("example-plugin", "broken-plugin"):
        # Built from a copy: pip writes build/ and *.egg-info next to the sources it builds.
        shutil.copytree(EXAMPLES / name, work / name, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        sources.append(str(work / name))
    site = work / "site-packages"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--disable-pip-version-check", "--quiet", "--target", str(site), *sources],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


@pytest.fixture(scope="module", autouse=True)
def installed(plugin_site):
    """The plugins on sys.path and loaded, for this module's tests only; afterwards minicnn is as before."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("MINICNN_LOAD_PLUGINS", "MINICNN_DISABLE_PLUGINS", "MINICNN_STRICT_PLUGINS"):
            patch.delenv(variable, raising=False)
        patch.syspath_prepend(str(plugin_site))
        mc.reload_plugins()
        yield plugin_site
    for name in [m for m in sys.modules if m.split(".")[0] in PLUGIN_MODULES]:
        del sys.modules[name]
    importlib.invalidate_caches()
    mc.reload_plugins()


def run_cli(site: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """`python -m minicnn ARGS` in a fresh process that sees the installed plugins through PYTHONPATH,
    with these MINICNN_* variables only."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINICNN_")} | variables
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "minicnn", *args], capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=300)


# -- found through the API and the CLI --------------------------------------------------------------


def test_the_api_finds_the_model_and_the_layer(installed):
    assert "tinynet" in mc.list_models() and "tinynet" in mc.list_models("tiny*")
    swish = mc.get_layer("Swish")
    assert swish.__name__ == "Swish"
    assert Path(sys.modules[swish.__module__].__file__).is_relative_to(installed)  # the installed copy
    entry = mc.plugin_system().registries["models"].get("tinynet")
    assert entry.plugin == "example" and entry.input_size == (1, 28, 28)


def test_the_plugin_names_its_distribution_and_version():
    info = mc.plugin_system().plugins["example"]
    assert (info.distribution, info.version, info.status) == ("minicnn-example-plugin", "0.1.0", "loaded")
    assert info.hooks == ["minicnn_register_layers", "minicnn_register_models", "minicnn_register_optimizers"]
    assert info.provides == {"layers": ["Swish"], "models": ["tinynet"], "optimizers": ["signsgd"]} and info.errors == []


def test_the_cli_lists_both_plugins(installed):
    result = run_cli(installed, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["example"]["status"] == "loaded" and rows["example"]["distribution"] == "minicnn-example-plugin"
    assert rows["example"]["provides"] == {"layers": ["Swish"], "models": ["tinynet"], "optimizers": ["signsgd"]}
    assert rows["broken"]["status"] == "failed" and rows["lenet"]["status"] == "loaded"


# -- the plugin's layer and model work --------------------------------------------------------------


def test_swish_computes_x_times_sigmoid_of_beta_x_per_channel():
    layer = mc.get_layer("Swish")(num_channels=2)
    layer.beta.data[...] = [1.0, 3.0]
    x = np.linspace(-4, 4, 2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    beta = np.array([1.0, 3.0], dtype=np.float32).reshape(1, 2, 1, 1)
    y = layer(mc.tensor(x))
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.numpy(), x / (1 + np.exp(-beta * x)), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="beta has 2 channels but the input has shape"):
        layer(mc.tensor(np.zeros((1, 3, 2, 2), dtype=np.float32)))


def test_tinynet_trains_on_a_separable_problem():
    """Bright left half: class 0; bright right half: class 1. Ten plain SGD steps separate them."""
    mc.manual_seed(0)
    model = mc.create_model("tinynet", num_classes=2)
    assert model(mc.tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))).shape == (1, 2)
    rng = np.random.default_rng(0)
    labels = np.arange(16) % 2
    images = rng.normal(0, 0.1, (16, 1, 28, 28)).astype(np.float32)
    images[labels == 0, :, :, :14] += 1.0
    images[labels == 1, :, :, 14:] += 1.0
    x, y = mc.tensor(images), mc.tensor(labels)
    beta_before = model.features[1].beta.numpy().copy()
    losses = []
    for _ in range(10):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.item())
        with mc.no_grad():
            for param in model.parameters():
                param.data -= 0.1 * param.grad.data
    assert losses[-1] < 0.5 * losses[0], losses
    assert not np.array_equal(model.features[1].beta.numpy(), beta_before)  # Swish's beta learns too
    with mc.no_grad():
        assert (model(x).numpy().argmax(axis=1) == labels).all()


# -- the plugin's optimizer -------------------------------------------------------------------------


def test_signsgd_steps_by_the_sign_of_the_gradient_or_of_its_running_mean():
    from minicnn.plugin.manager import create_optimizer, optimizer_entry

    assert optimizer_entry("signsgd").default_lr == 1e-3 and optimizer_entry("signsgd").plugin == "example"
    weight = mc.nn.Parameter(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))
    plain = create_optimizer("signsgd", [weight], lr=0.5, momentum=0.0, weight_decay=0.0)
    weight.grad = mc.tensor(np.array([3.0, -0.01, 0.0, -7.0], dtype=np.float32))
    plain.step()
    np.testing.assert_array_equal(weight.numpy(), [0.5, 2.5, 3.0, 4.5])
    signum = create_optimizer("signsgd", [weight], momentum=0.5, weight_decay=0.0)  # lr: the default, 1e-3
    for grad in ([1.0, -1.0, 1.0, -1.0], [-3.0, -1.0, 0.5, 0.5]):  # m: (.5, -.5, .5, -.5), then (-1.25, -.75, .5, 0)
        weight.grad = mc.tensor(np.array(grad, dtype=np.float32))
        signum.step()
    np.testing.assert_allclose(weight.numpy(), [0.5, 2.502, 2.998, 4.501], rtol=0, atol=1e-6)
    assert set(signum.state_dict()["arrays"]) == {"0.momentum_buffer"}


def test_minicnn_trains_with_the_plugin_s_optimizer_from_the_cli(installed, tmp_path):
    out = tmp_path / "run"
    result = run_cli(installed, "train", "lenet5", "--dataset", "digits", "--optimizer", "signsgd", "--epochs", "1",
                     "--limit-train", "256", "--seed", "0", "--out", str(out), MINICNN_CACHE=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stdout + result.stderr
    last = load_checkpoint(out / "last.safetensors")
    assert last.meta["config"]["optimizer"] == "signsgd" and last.optimizer["config"]["optimizer"] == "SignSGD"
    [group] = last.optimizer["config"]["param_groups"]
    assert (group["momentum"], group["weight_decay"]) == (0.9, 5e-4)  # the run's settings
    assert last.meta["scheduler"]["config"]["base_lrs"] == [1e-3]  # the optimizer's default lr, annealed from
    assert {name.split(".", 1)[1] for name in last.optimizer["arrays"]} == {"momentum_buffer"}
    metrics = json.loads((out / "metrics.jsonl").read_text(encoding="utf-8"))
    assert metrics["lr"] == 1e-3 and np.isfinite(metrics["test_loss"]), metrics
    resumed = run_cli(installed, "train", "--resume", str(out), MINICNN_CACHE=str(tmp_path / "cache"))
    assert resumed.returncode == 0 and "nothing left to train" in resumed.stdout, resumed.stderr
    unknown = run_cli(installed, "train", "lenet5", "--dataset", "digits", "--optimizer", "signsdg", "--out", str(tmp_path / "no"))
    assert unknown.returncode == 1 and "use sgd, adam or signsgd" in " ".join(unknown.stderr.split())
    assert "did you mean 'signsgd'" in " ".join(unknown.stderr.split())


# -- minicnn check ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tinynet", "Swish"])
def test_check_passes_through_the_api(name):
    report = check(name)
    assert report.passed, [(step.name, step.detail) for step in report.failures()]
    assert report.plugin == "example"


@pytest.mark.parametrize("name", ["tinynet", "Swish", "lenet5", "Conv2d"])
def test_minicnn_check_passes_in_a_fresh_process(installed, name):
    result = run_cli(installed, "check", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{name}: passed" in result.stdout and "✓ gradcheck" in result.stdout
    assert "plugin 'broken'" in result.stderr  # the broken plugin is named, and harmless


@pytest.mark.parametrize("name", ["tinynet", "Swish"])
def test_minicnn_check_passes_in_process(name):
    result = CliRunner().invoke(app, ["check", name])
    assert result.exit_code == 0, result.output
    assert f"{name}: passed" in result.output and "(plugin 'example')" in result.output


def test_an_unknown_name_exits_2_with_a_suggestion(installed):
    result = run_cli(installed, "check", "nosuch")
    assert result.returncode == 2 and "unknown model or layer 'nosuch'" in result.stderr
    result = run_cli(installed, "check", "tinynt")
    assert result.returncode == 2 and "did you mean 'tinynet'" in result.stderr
    result = CliRunner().invoke(app, ["check", "swish"])
    assert result.exit_code == 2 and "did you mean 'Swish'" in result.output


# -- the broken plugin ------------------------------------------------------------------------------


def test_the_broken_plugin_is_reported_and_everything_else_works():
    broken = mc.plugin_system().plugins["broken"]
    assert (broken.status, broken.distribution) == ("failed", "minicnn-broken-plugin")
    assert broken.errors == ["import failed: ModuleNotFoundError: No module named 'minicnn_missing_dependency'"]
    assert mc.plugin_system().plugins["lenet"].status == "loaded"
    assert {"lenet5", "tinynet"} <= set(mc.list_models()) and "broken" not in mc.list_models()
    assert mc.create_model("lenet5").num_parameters() == 61_706


def test_strict_mode_turns_the_broken_plugin_into_one_clear_error(installed):
    result = run_cli(installed, "check", "lenet5", MINICNN_STRICT_PLUGINS="1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "plugin 'broken' (distribution minicnn-broken-plugin): import failed" in " ".join(result.stderr.split())
    result = run_cli(installed, "check", "lenet5", MINICNN_STRICT_PLUGINS="1", MINICNN_DISABLE_PLUGINS="broken")
    assert result.returncode == 0 and result.stderr == ""
