"""`minicnn check`: a layer on the input it takes (--input-size), a model with its options
(--model-arg), a model spec file, and the GPU step where there is no GPU.

The layer comes from a throwaway plugin installed as a real distribution (a module plus a
`*.dist-info` folder) on a temporary sys.path entry: a one-channel layer registered without
`example` or `input_size`, so the check builds it with its defaults and would feed it (2, 3, 8, 8).
"""

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import minicnn as mc
from minicnn.backend import gpu_available
from minicnn.cli import app

runner = CliRunner()
SPEC = str(Path(__file__).resolve().parents[2] / "examples" / "lenet5.toml")

PLUGIN = '''
    import numpy as np

    import minicnn
    from minicnn import nn


    class GreyScale(nn.Module):
        """y = x * w per channel; x: (N, in_channels, H, W). Made for grey images: one channel by default."""

        def __init__(self, in_channels=1):
            super().__init__()
            self.weight = nn.Parameter(minicnn.tensor(np.linspace(0.5, 1.5, in_channels, dtype=np.float32)))

        def forward(self, x):
            if x.shape[1] != self.weight.shape[0]:
                raise ValueError(f"GreyScale: expected {self.weight.shape[0]} channel(s), got input {x.shape}")
            return x * self.weight.reshape(1, -1, 1, 1)


    @minicnn.hookimpl
    def minicnn_register_layers(register):
        register("GreyScale", GreyScale)
'''


@pytest.fixture(scope="module", autouse=True)
def grey_plugin(tmp_path_factory):
    """The plugin above, installed as the distribution `grey-cases` (plugin name `grey`)."""
    site = tmp_path_factory.mktemp("site")
    (site / "grey_cases.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "grey_cases-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: grey-cases\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[minicnn]\ngrey = grey_cases\n")
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("MINICNN_LOAD_PLUGINS", "MINICNN_DISABLE_PLUGINS", "MINICNN_STRICT_PLUGINS"):
            patch.delenv(variable, raising=False)
        patch.syspath_prepend(str(site))
        system = mc.reload_plugins()
        assert system.plugins["grey"].status == "loaded", system.plugins["grey"].errors
        yield
    sys.modules.pop("grey_cases", None)
    mc.reload_plugins()


def flat(text: str) -> str:
    """The output with its line wrapping undone."""
    return " ".join(text.split())


def steps(result) -> dict:
    return {step["name"]: step for step in json.loads(result.stdout)["steps"]}


def test_a_layer_fed_the_default_input_fails_and_says_to_pass_input_size():
    result = runner.invoke(app, ["check", "GreyScale"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    text = flat(result.output)
    assert "✗ forward" in text and "expected 1 channel(s), got input (2, 3, 8, 8)" in text
    assert "`minicnn check GreyScale --input-size N,C,H,W`" in text
    assert "GreyScale: failed (forward," in text


def test_input_size_sets_what_the_layer_is_fed():
    result = runner.invoke(app, ["check", "GreyScale", "--input-size", "2,1,5,7", "--json"])
    assert result.exit_code == 0, result.output
    report = steps(result)
    assert report["forward"]["detail"] == "input (2, 1, 5, 7) -> (2, 1, 5, 7) float32"
    assert all(step["status"] in ("passed", "skipped") for step in report.values())
    assert report["gradcheck"]["status"] == "passed"


def test_model_args_are_a_layer_s_arguments():
    result = runner.invoke(app, ["check", "GreyScale", "--model-arg", "in_channels=3", "--json"])
    assert result.exit_code == 0, result.output
    assert steps(result)["build"]["detail"] == "GreyScale, 3 parameters"


def test_model_args_reach_a_model_s_factory():
    result = runner.invoke(app, ["check", "lenet5", "--model-arg", "num_classes=3", "--input-size", "4,1,28,28", "--json"])
    assert result.exit_code == 0, result.output
    assert steps(result)["forward"]["detail"] == "input (4, 1, 28, 28) -> (4, 3) float32"


def test_a_model_s_input_size_may_leave_out_the_batch():
    result = runner.invoke(app, ["check", "lenet5", "--model-arg", "padding=0", "--input-size", "1,32,32", "--json"])
    assert result.exit_code == 0, result.output
    assert steps(result)["forward"]["detail"] == "input (2, 1, 32, 32) -> (2, 10) float32"


def test_a_wrong_model_arg_fails_the_build_naming_the_model_and_the_key():
    result = runner.invoke(app, ["check", "lenet5", "--model-arg", "width=32"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    text = flat(result.output)
    assert "✗ build" in text and "model 'lenet5' (plugin 'lenet') could not be built with {'width': 32}" in text
    assert "'width'" in text.split("could not be built")[1].split("{'width': 32}")[1]


def test_a_spec_file_is_checked_on_its_own_input_size():
    result = runner.invoke(app, ["check", SPEC])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert text.startswith(f"model spec '{SPEC}' ✓ build")
    assert "input (2, 1, 28, 28) -> (2, 10) float32" in text and "61,706 parameters" in text
    assert "lenet5.toml: passed" in text


def test_a_spec_without_input_size_needs_one(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('[[layers]]\ntype = "Flatten"\n\n[[layers]]\ntype = "Linear"\nin_features = 12\nout_features = 3\n')
    missing = runner.invoke(app, ["check", str(spec)])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert "names no input_size" in flat(missing.output) and "--input-size N,C,H,W" in flat(missing.output)
    given = runner.invoke(app, ["check", str(spec), "--input-size", "3,2,2", "--json"])
    assert given.exit_code == 0, given.output
    assert steps(given)["forward"]["detail"] == "input (2, 3, 2, 2) -> (2, 3) float32"
    options = runner.invoke(app, ["check", str(spec), "--model-arg", "width=2"])
    assert options.exit_code == 1 and "takes no model options (width)" in flat(options.output)


@pytest.mark.parametrize("size", ["2,a,8", "2,0,8,8", ""])
def test_a_malformed_input_size_is_one_line(size):
    result = runner.invoke(app, ["check", "GreyScale", "--input-size", size])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert flat(result.output).startswith("error: --input-size must be")


@pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU, so the step runs")
def test_without_a_gpu_the_gpu_step_says_no_gpu_here():
    result = runner.invoke(app, ["check", "Conv2d"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "cpu-gpu" in line)
    assert re.match(r"- cpu-gpu +\d+\.\d\ds no GPU here \(", line.strip()), line
    assert "requested" not in result.output
