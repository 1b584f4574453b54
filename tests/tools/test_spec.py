"""Model specs: the shipped LeNet-5 spec is the plugin's LeNet-5, and every mistake is explained."""

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import minicnn as mc
from minicnn import nn
from minicnn.cli import app
from minicnn.plugin.registry import Entry
from minicnn.tools.spec import SpecError, build_model, is_spec_path, load_spec

LENET_SPEC = Path(__file__).resolve().parents[2] / "examples" / "lenet5.toml"


def leaves(model):
    return [m for m in model.modules() if next(m.children(), None) is None]


def write(tmp_path, text, name="net.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lenet_spec_is_the_plugin_lenet():
    spec_model = build_model(LENET_SPEC)
    plugin_model = mc.create_model("lenet5")
    assert spec_model.num_parameters() == plugin_model.num_parameters() == 61_706
    assert [type(m) for m in leaves(spec_model)] == [type(m) for m in leaves(plugin_model)]
    assert [name for name, _ in spec_model.named_children()] == [str(i) for i in range(12)]
    assert (spec_model.name, spec_model.input_size) == ("lenet5", (1, 28, 28))

    state = plugin_model.state_dict()
    assert len(state) == len(spec_model.state_dict()) == 10  # names differ ("features.0.weight" vs "0.weight"): map by order
    spec_model.load_state_dict(dict(zip(spec_model.state_dict(), state.values())))
    x = mc.tensor(np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32))
    np.testing.assert_array_equal(spec_model(x).numpy(), plugin_model(x).numpy())


def test_input_size_and_spec_paths(tmp_path):
    assert build_model(LENET_SPEC).input_size == (1, 28, 28)
    assert build_model({"layers": [{"type": "ReLU"}]}).input_size is None
    assert is_spec_path(LENET_SPEC) and is_spec_path("missing.TOML")
    assert not is_spec_path("lenet5")


def test_dict_spec_names_children_and_turns_arrays_into_tuples():
    model = build_model({
        "input_size": [3, 8, 8],
        "layers": [
            {"type": "Conv2d", "name": "conv", "in_channels": 3, "out_channels": 4, "kernel_size": [3, 1], "padding": [1, 0]},
            {"type": "MaxPool2d", "kernel_size": [2, 2]},
        ],
    })
    assert [name for name, _ in model.named_children()] == ["conv", "1"]
    assert model.conv.kernel_size == (3, 1) and model.conv.padding == (1, 0)
    assert model[1].kernel_size == (2, 2)
    assert model(mc.tensor(np.zeros((1, 3, 8, 8), dtype=np.float32))).shape == (1, 4, 4, 4)
    assert model.input_size == (3, 8, 8) and model.name == ""


class Scale(nn.Module):
    """A third-party layer: multiplies by a constant."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


@pytest.fixture
def scale_layer():
    mc.plugin_system().registries["layers"].add(Entry("layer", "Scale", Scale, "a-third-party-plugin"))
    yield
    mc.reload_plugins()


def test_a_third_party_layer_is_usable_by_name(scale_layer, tmp_path):
    path = write(tmp_path, 'input_size = [2, 3, 3]\n[[layers]]\ntype = "Scale"\nfactor = 2.5\n')
    model = build_model(path)
    assert isinstance(model[0], Scale)
    np.testing.assert_allclose(model(mc.tensor(np.ones((1, 2, 3, 3), dtype=np.float32))).numpy(), 2.5)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"model spec '.*nowhere\.toml' not found: give the path of a TOML file"):
        build_model(tmp_path / "nowhere.toml")


def test_toml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, '[[layers]]\ntype = "ReLU"\nkernel_size = = 3\n')
    with pytest.raises(SpecError, match=r"net\.toml' is not valid TOML: .*line 3.*fix the syntax"):
        build_model(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "net.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path)


@pytest.mark.parametrize("text", ['name = "empty"\n', "layers = []\n"])
def test_no_layers(tmp_path, text):
    with pytest.raises(SpecError, match=r"net\.toml' has no layers: add \[\[layers\]\] tables"):
        build_model(write(tmp_path, text))


def test_layers_must_be_tables():
    with pytest.raises(SpecError, match=r"layer 0: expected a \[\[layers\]\] table"):
        build_model({"layers": ["Conv2d"]})


def test_missing_type_names_the_layer(tmp_path):
    path = write(tmp_path, '[[layers]]\ntype = "ReLU"\n[[layers]]\nkernel_size = 2\n')
    with pytest.raises(SpecError, match=r"net\.toml', layer 1: missing type; add type = "):
        build_model(path)


def test_unknown_type_suggests_the_registered_name(tmp_path):
    path = write(tmp_path, '[[layers]]\ntype = "Conv2D"\nin_channels = 1\n')
    with pytest.raises(SpecError, match=r"layer 0 \(Conv2D\): unknown layer 'Conv2D'; did you mean 'Conv2d'.*minicnn plugins"):
        build_model(path)


def test_bad_argument_name_shows_the_signature(tmp_path):
    path = write(tmp_path, '[[layers]]\ntype = "ReLU"\n[[layers]]\ntype = "Linear"\nin_features = 4\nout_feature = 2\n')
    expected = (r"layer 1 \(Linear\): unknown argument 'out_feature'; did you mean 'out_features'.*\? "
                r"Linear takes \(in_features, out_features, bias=True\)$")
    with pytest.raises(SpecError, match=expected):
        build_model(path)


def test_bad_argument_value_passes_the_layers_error_on():
    spec = {"layers": [{"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "groups": 2}]}
    with pytest.raises(SpecError, match=r"layer 0 \(Conv2d\): groups=2 must divide in_channels=3 .*; Conv2d takes \("):
        build_model(spec)


@pytest.mark.parametrize("value", ["[1, 28]", "[1, 0, 28]", "[1, 28.5, 28]", '"1,28,28"', "[true, 28, 28]"])
def test_bad_input_size(tmp_path, value):
    path = write(tmp_path, f'input_size = {value}\n[[layers]]\ntype = "ReLU"\n')
    with pytest.raises(SpecError, match=r"input_size must be \[C, H, W\], three positive integers"):
        build_model(path)


def test_misspelled_top_level_key():
    expected = r"unknown top-level key\(s\) 'layer'; the keys are name, description, input_size, layers"
    with pytest.raises(SpecError, match=expected):
        build_model({"layer": [{"type": "ReLU"}]})


@pytest.mark.parametrize("name, problem", [
    ("a", r"layer 1 \(Tanh\): the name 'a' is already used"), ("a.b", "without dots"), ("", "non-empty"),
])
def test_bad_child_names(name, problem):
    with pytest.raises(SpecError, match=problem):
        build_model({"layers": [{"type": "ReLU", "name": "a"}, {"type": "Tanh", "name": name}]})



SIGNATURE = "Conv2d takes (in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)"


@pytest.mark.parametrize("keys, problem", [
    ('in_channels = "one"\nout_channels = 6\nkernel_size = 5', "in_channels must be a positive integer, got 'one';"),
    ("in_channels = 1\nout_channels = 6.5\nkernel_size = 5", "out_channels must be a positive integer, got 6.5;"),
    ("in_channels = 1\nout_channels = 0\nkernel_size = 5", "out_channels must be a positive integer, got 0;"),
    ("in_channels = 1\nout_channels = 6\nkernel_size = [5, 0]",
     "kernel_size must be a positive integer or a pair of them, got (5, 0);"),
    ('in_channels = 1\nout_channels = 6\nkernel_size = 5\npadding = "half"',
     "padding must be a non-negative integer or a pair of them, or one of 'valid', 'same', 'full', got 'half';"),
    ('in_channels = 1\nout_channels = 6\nkernel_size = 5\nbias = "false"', "bias must be true or false, got 'false';"),
    ("in_channels = 1\nout_channel = 6\nkernel_size = 5",
     "unknown argument 'out_channel'; did you mean 'out_channels', 'in_channels'?"),
    ("in_channels = 1\nout_channel = 6\nkernal_size = 5", "unknown arguments 'out_channel', 'kernal_size';"),
    ("in_channels = 1", "missing arguments 'out_channels', 'kernel_size';"),
], ids=["string_count", "float_count", "zero_count", "zero_kernel_side", "unknown_padding_mode", "string_flag",
        "misspelled_key", "two_misspelled_keys", "missing_keys"])
def test_a_bad_layer_argument_is_one_line_naming_the_layer_the_key_and_what_is_expected(tmp_path, keys, problem):
    path = write(tmp_path, f'[[layers]]\ntype = "Conv2d"\n{keys}\n')
    with pytest.raises(SpecError) as error:
        build_model(path)
    assert str(error.value) == f"model spec '{path}', layer 0 (Conv2d): {problem} {SIGNATURE}"


@pytest.mark.parametrize("text, problem", [
    ('name = 5\n[[layers]]\ntype = "ReLU"', "name must be text in quotes, such as name = \"...\", got 5"),
    ('description = ["a"]\n[[layers]]\ntype = "ReLU"', "description must be text in quotes, such as description = \"...\""),
    ('layers = "ReLU"', "'layers' must be a list of [[layers]] tables, got str"),
    ('[layers]\ntype = "ReLU"', "'layers' must be a list of [[layers]] tables, got dict"),
    ("layers = 0", "'layers' must be a list of [[layers]] tables, got int"),
    ("[[layers]]\ntype = 3", "layer 0: type must be a registered layer's name in quotes, such as type = \"Conv2d\", got 3"),
], ids=["name", "description", "layers_string", "layers_one_table", "layers_number", "layer_type"])
def test_a_top_level_value_of_the_wrong_kind_is_named(tmp_path, text, problem):
    with pytest.raises(SpecError, match=re.escape(problem)):
        build_model(write(tmp_path, text + "\n"))


def test_the_cli_shows_one_clean_line_for_a_bad_layer_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line on the screen too
    path = write(tmp_path, '[[layers]]\ntype = "Conv2d"\nin_channels = 1\nout_channels = 6.5\nkernel_size = 5\n')
    for command in (["summary", str(path)], ["summary", str(path), "--input-size", "1,28,28"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            f"error: model spec '{path}', layer 0 (Conv2d): out_channels must be a positive integer, got 6.5; {SIGNATURE}"
        ]
