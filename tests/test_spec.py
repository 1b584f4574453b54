"""Model specs: the shipped LeNet-5 spec is the plugin's LeNet-5, and every mistake is explained."""

from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.registry import Entry
from minicnn.spec import SpecError, build_model, is_spec_path, load_spec

LENET_SPEC = Path(__file__).resolve().parents[1] / "examples" / "lenet5.toml"


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
    expected = r"layer 1 \(Linear\): bad arguments .*out_feature.*Linear takes \(in_features, out_features, bias=True\)"
    with pytest.raises(SpecError, match=expected):
        build_model(path)


def test_bad_argument_value_passes_the_layers_error_on():
    spec = {"layers": [{"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "groups": 2}]}
    with pytest.raises(SpecError, match=r"layer 0 \(Conv2d\): bad arguments .*groups=2 must divide in_channels=3"):
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
