"""Conv2d and Linear layers: PyTorch's signatures, parameter shapes and counts, forward equal to the
functional op with the layer's own parameters (and to torch's layer), and multiply-add counts."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.testing import gradcheck


def lenet(lib):
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2), lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2),
        lib.Flatten(), lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10),
    )


def defaults(cls):
    return {
        name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
    }


def sample(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- signatures and parameters --------------------------------------------------------------------


def test_conv2d_signature_is_torchs():
    empty = inspect.Parameter.empty
    assert defaults(nn.Conv2d) == {
        "in_channels": empty, "out_channels": empty, "kernel_size": empty, "stride": 1, "padding": 0,
        "dilation": 1, "groups": 1, "bias": True,
    }


def test_linear_signature_is_torchs():
    empty = inspect.Parameter.empty
    assert defaults(nn.Linear) == {"in_features": empty, "out_features": empty, "bias": True}


def test_signatures_are_a_prefix_of_torchs():
    torch = pytest.importorskip("torch")
    for mine, theirs in ((nn.Conv2d, torch.nn.Conv2d), (nn.Linear, torch.nn.Linear)):
        own = list(defaults(mine).items())
        assert list(defaults(theirs).items())[: len(own)] == own, mine.__name__


def test_conv2d_settings_are_normalised_to_pairs():
    conv = nn.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2), dilation=(2, 1), groups=1, bias=False)
    assert conv.kernel_size == (3, 5) and conv.stride == (2, 2) and conv.padding == (1, 2) and conv.dilation == (2, 1)
    assert nn.Conv2d(3, 8, 3, padding="same").padding == "same"


def test_conv2d_parameter_shapes_and_count():
    conv = nn.Conv2d(3, 16, 5)
    assert conv.weight.shape == (16, 3, 5, 5) and conv.bias.shape == (16,)
    assert conv.weight.dtype == np.float32 and conv.bias.dtype == np.float32
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.num_parameters() == 16 * 3 * 25 + 16 == 1216


def test_conv2d_groups_and_no_bias_shapes():
    conv = nn.Conv2d(4, 8, (3, 2), groups=2, bias=False)
    assert conv.weight.shape == (8, 2, 3, 2)
    assert conv.bias is None
    assert [name for name, _ in conv.named_parameters()] == ["weight"]
    assert list(conv.state_dict()) == ["weight"]
    assert nn.Conv2d(6, 6, 3, groups=6).weight.shape == (6, 1, 3, 3)


@pytest.mark.parametrize("in_channels, out_channels, groups", [(4, 6, 3), (6, 4, 3), (3, 3, 2)])
def test_conv2d_groups_must_divide_both_channel_counts(in_channels, out_channels, groups):
    with pytest.raises(ValueError, match=f"groups={groups}"):
        nn.Conv2d(in_channels, out_channels, 3, groups=groups)


def test_linear_parameter_shapes_and_count():
    linear = nn.Linear(400, 120)
    assert linear.weight.shape == (120, 400) and linear.bias.shape == (120,)
    assert linear.num_parameters() == 400 * 120 + 120
    no_bias = nn.Linear(4, 3, bias=False)
    assert no_bias.bias is None and [name for name, _ in no_bias.named_parameters()] == ["weight"]


def test_lenet_parameter_count():
    assert lenet(nn).num_parameters() == 61_706
    assert sum(p.numel() for p in lenet(nn).parameters()) == 61_706


def test_parameter_counts_match_torch():
    torch = pytest.importorskip("torch")
    for build in (lenet, lambda lib: lib.Conv2d(6, 12, (3, 5), groups=3, bias=False), lambda lib: lib.Linear(7, 5)):
        mine = [tuple(p.shape) for p in build(nn).parameters()]
        theirs = [tuple(p.shape) for p in build(torch.nn).parameters()]
        assert mine == theirs


# --- forward --------------------------------------------------------------------------------------

CONV_CASES = {
    "basic": (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 7, 8)),
    "no_bias_stride": (dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, bias=False), (2, 3, 9, 9)),
    "padding_pair": (dict(in_channels=2, out_channels=3, kernel_size=(3, 2), padding=(1, 2)), (1, 2, 5, 6)),
    "dilation": (dict(in_channels=2, out_channels=3, kernel_size=3, dilation=2, padding=1), (2, 2, 8, 8)),
    "groups": (dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1), (2, 4, 5, 5)),
    "same_odd": (dict(in_channels=2, out_channels=3, kernel_size=5, padding="same"), (2, 2, 6, 7)),
    "same_even": (dict(in_channels=2, out_channels=3, kernel_size=(2, 4), padding="same"), (2, 2, 6, 7)),
    "same_dilated": (dict(in_channels=2, out_channels=2, kernel_size=3, padding="same", dilation=(2, 3)), (1, 2, 9, 9)),
    "valid": (dict(in_channels=2, out_channels=2, kernel_size=3, padding="valid"), (1, 2, 5, 5)),
}


@pytest.mark.parametrize("kwargs, x_shape", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_forward_is_the_functional_op_with_its_parameters(kwargs, x_shape):
    conv = nn.Conv2d(**kwargs)
    x = mc.tensor(sample(x_shape))
    expected = F.conv2d(
        x, conv.weight, conv.bias, kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1),
        kwargs.get("groups", 1),
    )
    np.testing.assert_array_equal(conv(x).numpy(), expected.numpy())


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kwargs, x_shape", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_forward_matches_torch(kwargs, x_shape):
    torch = pytest.importorskip("torch")
    reference = torch.nn.Conv2d(**kwargs)
    conv = nn.Conv2d(**kwargs)
    conv.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    x = sample(x_shape, seed=1)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    out = conv(mc.tensor(x)).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel_size, dilation", [(3, 1), (4, 1), ((2, 5), 1), (3, (2, 3))])
def test_conv2d_same_padding_keeps_the_spatial_size(kernel_size, dilation):
    conv = nn.Conv2d(2, 3, kernel_size, padding="same", dilation=dilation)
    assert conv(mc.tensor(sample((1, 2, 7, 6)))).shape == (1, 3, 7, 6)


def test_conv2d_hand_values():
    """A 2x2 all-ones filter with bias 1 on a 3x3 ramp: each output is its window's sum plus 1."""
    conv = nn.Conv2d(1, 1, 2)
    conv.load_state_dict({"weight": np.ones((1, 1, 2, 2)), "bias": np.ones(1)})
    x = mc.tensor(np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3))
    np.testing.assert_array_equal(conv(x).numpy(), [[[[0 + 1 + 3 + 4 + 1, 1 + 2 + 4 + 5 + 1], [3 + 4 + 6 + 7 + 1, 4 + 5 + 7 + 8 + 1]]]])


def test_linear_forward_is_x_w_transpose_plus_b():
    linear = nn.Linear(5, 3)
    x = sample((4, 5))
    expected = x @ linear.weight.numpy().T + linear.bias.numpy()
    np.testing.assert_allclose(linear(mc.tensor(x)).numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(linear(mc.tensor(x)).numpy(), F.linear(mc.tensor(x), linear.weight, linear.bias).numpy())


def test_linear_acts_on_the_last_axis():
    linear = nn.Linear(5, 3, bias=False)
    x = sample((2, 4, 5))
    out = linear(mc.tensor(x))
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out.numpy(), np.einsum("abi,oi->abo", x, linear.weight.numpy()), rtol=1e-5, atol=1e-6)


def test_linear_wrong_feature_count_is_an_error():
    with pytest.raises(ValueError, match="features"):
        nn.Linear(5, 3)(mc.tensor(sample((2, 4))))


def test_layer_parameter_gradients_match_torch():
    torch = pytest.importorskip("torch")
    for build, x_shape in (
        (lambda lib: lib.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2), (2, 4, 7, 7)),
        (lambda lib: lib.Linear(6, 3), (4, 6)),
    ):
        reference, layer = build(torch.nn).double(), build(nn).double()
        layer.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
        rng = np.random.default_rng(3)
        x = rng.standard_normal(x_shape)
        out = layer(mc.tensor(x))
        upstream = rng.standard_normal(out.shape)
        out.backward(upstream)
        reference(torch.from_numpy(x)).backward(torch.from_numpy(upstream))
        for (name, mine), theirs in zip(layer.named_parameters(), reference.parameters()):
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_conv2d_layer_gradcheck_wrt_input():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2).double()
    assert gradcheck(conv, [np.random.default_rng(4).standard_normal((2, 2, 5, 5))])


# --- multiply-adds --------------------------------------------------------------------------------


def shapes_through(layer, x_shape):
    out = layer(mc.tensor(np.zeros(x_shape, dtype=np.float32)))
    return x_shape, out.shape


@pytest.mark.parametrize("layer, x_shape, expected", [
    # every output value costs in_channels/groups * kH * kW multiply-adds
    (nn.Conv2d(3, 16, 5), (1, 3, 32, 32), 16 * 28 * 28 * (3 * 5 * 5)),
    (nn.Conv2d(3, 16, 5), (2, 3, 32, 32), 2 * 16 * 28 * 28 * (3 * 5 * 5)),
    (nn.Conv2d(1, 6, 5, padding=2), (1, 1, 28, 28), 6 * 28 * 28 * 25),
    (nn.Conv2d(4, 8, 3, groups=2, stride=2, bias=False), (1, 4, 7, 7), 8 * 3 * 3 * (2 * 3 * 3)),
    (nn.Conv2d(2, 2, (3, 1)), (1, 2, 5, 5), 2 * 3 * 5 * (2 * 3 * 1)),
    (nn.Linear(400, 120), (1, 400), 400 * 120),
    (nn.Linear(400, 120), (4, 400), 4 * 400 * 120),
])
def test_multiply_adds_hand_formulas(layer, x_shape, expected):
    assert layer.multiply_adds(*shapes_through(layer, x_shape)) == expected


def test_lenet_multiply_adds():
    """LeNet-5's well-known ~0.42 M MACs for one 28x28 image with padding 2 on the first conv."""
    model = lenet(nn)
    total, x = 0, mc.tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))
    for layer in model:
        out = layer(x)
        total += layer.multiply_adds(x.shape, out.shape)
        x = out
    assert total == 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10 == 416_520


def test_layers_without_weights_count_no_multiply_adds():
    for layer in (nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()):
        assert layer.multiply_adds(*shapes_through(layer, (1, 2, 4, 4))) == 0
