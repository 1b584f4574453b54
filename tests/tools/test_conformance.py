"""The conformance check behind `minicnn check`: correct layers and models pass, and each kind of
mistake fails the step that should catch it, with a message that says what is wrong.

The layers and models under test come from a throwaway plugin, installed as a real distribution
(a module plus a `*.dist-info` folder with entry_points.txt) on a temporary sys.path entry.
"""

import sys
import textwrap

import pytest
from typer.testing import CliRunner

import minicnn as mc
from minicnn import backend
from minicnn.cli import app
from minicnn.tools.conformance import check, check_layer, check_model

PLUGIN = '''
    import itertools

    import numpy as np

    import minicnn
    import minicnn.functional as F
    from minicnn import nn


    class Scale(minicnn.Function):
        """y = x * w, w one factor per channel. x: (N, C, H, W), w: (C,). `mistake` spoils one gradient."""

        def __init__(self, mistake):
            self.mistake = mistake

        def forward(self, x, w):
            self.save_for_backward(x, w)
            return x * w.reshape(1, -1, 1, 1)

        def backward(self, g):
            x, w = self.saved
            grad_x = g * w.reshape(1, -1, 1, 1)
            grad_w = (g * x).sum(axis=(0, 2, 3))
            if self.mistake == "weight":
                grad_w = 2 * grad_w
            if self.mistake == "input":
                grad_x = grad_x + 0.1
            return grad_x, grad_w


    class ScaleLayer(nn.Module):
        def __init__(self, channels=3, mistake=None):
            super().__init__()
            self.mistake = mistake
            self.weight = nn.Parameter(minicnn.tensor(np.linspace(0.5, 1.5, channels, dtype=np.float32)))

        def forward(self, x):
            return Scale(self.mistake)(x, self.weight)


    class DoubleOutput(nn.Module):
        def forward(self, x):
            return x * minicnn.tensor(np.ones(1))  # a float64 constant turns the output float64


    class NeedsConfig(nn.Module):
        def __init__(self):
            super().__init__()
            raise ValueError("NeedsConfig: pass a config file")


    class UnusedParameter(ScaleLayer):
        def __init__(self):
            super().__init__()
            self.spare = nn.Parameter(minicnn.tensor(np.zeros(3, dtype=np.float32)))


    class ForgetsState(nn.Module):
        """Keeps a value outside its parameters and buffers, so a loaded copy computes something else."""

        instances = itertools.count()

        def __init__(self, num_classes=3, in_channels=1):
            super().__init__()
            self.flatten, self.fc = nn.Flatten(), nn.Linear(in_channels * 16, num_classes)
            self.offset = float(next(ForgetsState.instances))

        def forward(self, x):
            return self.fc(self.flatten(x)) + self.offset


    class TwoHeads(nn.Module):
        """Two outputs whose last layers share one weight (a tied Parameter)."""

        def __init__(self, num_classes=3, in_channels=1):
            super().__init__()
            self.flatten, self.body = nn.Flatten(), nn.Linear(in_channels * 16, 8)
            self.dropout = nn.Dropout(0.5)
            self.head, self.aux = nn.Linear(8, num_classes), nn.Linear(8, num_classes)
            self.aux.weight = self.head.weight

        def forward(self, x):
            hidden = self.dropout(F.tanh(self.body(self.flatten(x))))
            return self.head(hidden), self.aux(hidden)


    @minicnn.hookimpl
    def minicnn_register_layers(register):
        size = (2, 3, 4, 4)
        register("GoodScale", ScaleLayer, input_size=size)
        register("WrongWeightGrad", ScaleLayer, example={"mistake": "weight"}, input_size=size)
        register("WrongInputGrad", ScaleLayer, example={"mistake": "input"}, input_size=size)
        register("DoubleOutput", DoubleOutput)
        register("NeedsConfig", NeedsConfig)
        register("UnusedParameter", UnusedParameter, input_size=size)


    @minicnn.hookimpl
    def minicnn_register_models(register):
        register("forgetsstate", ForgetsState, input_size=(1, 4, 4))
        register("twoheads", TwoHeads, input_size=(1, 4, 4))
        register("notamodule", lambda **kwargs: np.zeros(3), input_size=(1, 4, 4))
'''


@pytest.fixture(scope="module", autouse=True)
def conformance_plugin(tmp_path_factory):
    """The plugin above, installed as the distribution `conformance-cases` (plugin name `cases`)."""
    site = tmp_path_factory.mktemp("site")
    (site / "conformance_cases.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "conformance_cases-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: conformance-cases\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[minicnn]\ncases = conformance_cases\n")
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("MINICNN_LOAD_PLUGINS", "MINICNN_DISABLE_PLUGINS", "MINICNN_STRICT_PLUGINS"):
            patch.delenv(variable, raising=False)
        patch.syspath_prepend(str(site))
        system = mc.reload_plugins()
        assert system.plugins["cases"].status == "loaded", system.plugins["cases"].errors
        yield
    sys.modules.pop("conformance_cases", None)
    mc.reload_plugins()


def statuses(report):
    return {step.name: step.status for step in report.steps}


def failed(report):
    return [step.name for step in report.failures()]


def gpu_usable() -> bool:
    try:
        backend.check_cuda_device(backend.Device("cuda", 0))
    except backend.DeviceError:
        return False
    return True


@pytest.mark.parametrize("name", [layer.__name__ for layer in mc.nn.LAYERS])
def test_every_builtin_layer_passes(name, conforms):
    report = check_layer(name)
    conforms(report)
    assert [step.name for step in report.steps] == ["build", "forward", "backward", "gradcheck", "state_dict", "cpu-gpu"]


def test_a_correct_custom_layer_and_lenet5_pass(conforms):
    for report in (check("GoodScale"), check("lenet5")):
        conforms(report)
    assert check("lenet5").kind == "model" and check("GoodScale").plugin == "cases"


def test_a_wrong_parameter_gradient_fails_gradcheck_naming_the_parameter():
    report = check("WrongWeightGrad")
    assert not report.passed and failed(report) == ["gradcheck"]
    detail = report.steps[3].detail
    assert detail.startswith("gradcheck: parameter 'weight' (shape (3,)), element (0,)")
    assert "analytic" in detail and "numeric" in detail


def test_a_wrong_input_gradient_fails_gradcheck_naming_the_input():
    report = check("WrongInputGrad")
    assert failed(report) == ["gradcheck"]
    assert report.steps[3].detail.startswith("gradcheck: the input (shape (2, 3, 4, 4)), element (0, 0, 0, 0)")


def test_a_float64_output_fails_forward_and_skips_backward():
    report = check("DoubleOutput")
    assert statuses(report)["forward"] == "failed" and statuses(report)["backward"] == "skipped"
    assert "float64" in report.steps[1].detail and "keep float32" in report.steps[1].detail


def test_a_layer_that_cannot_be_built_fails_build_with_the_error_and_no_traceback():
    report = check("NeedsConfig")
    assert statuses(report) == {"build": "failed", "forward": "skipped", "backward": "skipped",
                                "gradcheck": "skipped", "state_dict": "skipped", "cpu-gpu": "skipped"}
    assert report.steps[0].detail == "ValueError: NeedsConfig: pass a config file"
    assert not any("Traceback" in step.detail for step in report.steps)


def test_a_factory_that_returns_no_module_fails_build():
    report = check("notamodule")
    assert failed(report) == ["build"] and "returned a ndarray, not a minicnn.nn.Module" in report.steps[0].detail


def test_a_parameter_without_gradient_fails_backward():
    report = check("UnusedParameter")
    assert failed(report) == ["backward"]
    assert report.steps[2].detail == "backward: 'spare' got no gradient"


def test_state_kept_outside_the_state_dict_fails_the_round_trip():
    report = check_model("forgetsstate")
    assert failed(report) == ["state_dict"]
    assert "register_buffer" in report.steps[4].detail


def test_several_outputs_tied_weights_and_dropout_pass():
    report = check("twoheads")
    assert report.passed, [(step.name, step.detail) for step in report.failures()]
    assert "(2, 3), (2, 3)" in report.steps[1].detail


def test_the_gpu_step_runs_only_where_a_gpu_is_usable():
    step = check("Conv2d").steps[5]
    if gpu_usable():
        assert step.status == "passed", step.detail
    else:
        assert step.status == "skipped" and step.passed and step.detail.startswith("no GPU here (")
        assert "requested" not in step.detail


def test_an_unknown_name_suggests_close_ones():
    with pytest.raises(mc.RegistryError, match=r"unknown model or layer 'conv2d'; did you mean 'Conv2d'"):
        check("conv2d")


def test_the_cli_marks_the_failing_step_and_exits_1():
    result = CliRunner().invoke(app, ["check", "WrongWeightGrad"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "✗ gradcheck" in text and "parameter 'weight'" in text and "✓ forward" in text
    assert "WrongWeightGrad: failed (gradcheck)" in text


def test_the_report_is_plain_data():
    data = check("GoodScale").as_dict()
    assert data["passed"] and data["kind"] == "layer" and data["plugin"] == "cases"
    assert [step["status"] for step in data["steps"]][:5] == ["passed"] * 5
