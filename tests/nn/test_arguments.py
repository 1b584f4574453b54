"""Layer arguments: each check's accepted and refused values, a bad argument for every built-in layer
refused when the layer is built (naming the layer, the argument, the value and what is expected), and
what PyTorch accepts accepted with the same meaning (torch's layers as the reference)."""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.nn import arguments


class Probe(nn.Module):
    """Stands for the layer being built: its class name starts every message."""


def check_returns(check, value, expected, **options):
    got = check(Probe(), "x", value, **options)
    assert got == expected
    kinds = [type(v) for v in got] if isinstance(got, tuple) else [type(got)]
    assert kinds == [type(v) for v in (expected if isinstance(expected, tuple) else (expected,))]  # never NumPy's


@pytest.mark.parametrize("check, value, expected", [
    (arguments.integer, -1, -1), (arguments.integer, np.int64(2), 2),
    (arguments.positive_int, 3, 3), (arguments.positive_int, np.uint8(1), 1),
    (arguments.positive_pair, 3, (3, 3)), (arguments.positive_pair, (3, 5), (3, 5)),
    (arguments.positive_pair, [3, 5], (3, 5)), (arguments.positive_pair, np.array([2, 4]), (2, 4)),
    (arguments.positive_pair, np.int32(2), (2, 2)),
    (arguments.padding, 0, (0, 0)), (arguments.padding, (1, 0), (1, 0)),
    (arguments.fraction, 0, 0.0), (arguments.fraction, 1, 1.0), (arguments.fraction, np.float32(0.25), 0.25),
    (arguments.positive_number, 1e-5, 1e-5), (arguments.positive_number, np.float64(2), 2.0),
    (arguments.number, -2, -2.0), (arguments.number, 0.75, 0.75),
    (arguments.flag, True, True), (arguments.flag, np.bool_(False), False), (arguments.flag, 0, False),
    (arguments.flag, 1, True),
])
def test_accepted_values_come_back_as_python_values(check, value, expected):
    check_returns(check, value, expected)


def test_padding_modes_and_none_sides_only_where_asked_for():
    check_returns(arguments.padding, "same", "same", modes=("valid", "same"))
    check_returns(arguments.positive_pair, (None, 3), (None, 3), none_allowed=True)
    check_returns(arguments.positive_pair, None, (None, None), none_allowed=True)
    with pytest.raises(ValueError, match=r"^Probe: x must be .*, or one of 'valid', 'same', got 'half'$"):
        arguments.padding(Probe(), "x", "half", modes=("valid", "same"))
    with pytest.raises(TypeError, match=r"^Probe: x must be a non-negative integer or a pair of them, got 'same'$"):
        arguments.padding(Probe(), "x", "same")
    with pytest.raises(TypeError, match=r"^Probe: x must be a positive integer or a pair of them, got \(None, 3\)$"):
        arguments.positive_pair(Probe(), "x", (None, 3))


@pytest.mark.parametrize("check, value, error, message", [
    (arguments.integer, 1.0, TypeError, "an integer, got 1.0"),
    (arguments.integer, True, TypeError, "an integer, got True"),
    (arguments.positive_int, 6.5, TypeError, "a positive integer, got 6.5"),
    (arguments.positive_int, "one", TypeError, "a positive integer, got 'one'"),
    (arguments.positive_int, True, TypeError, "a positive integer, got True"),
    (arguments.positive_int, 0, ValueError, "a positive integer, got 0"),
    (arguments.positive_int, np.int64(-3), ValueError, "a positive integer, got -3"),
    (arguments.positive_pair, (3, 0), ValueError, "a positive integer or a pair of them, got (3, 0)"),
    (arguments.positive_pair, (3, 3, 3), TypeError, "a positive integer or a pair of them, got (3, 3, 3)"),
    (arguments.positive_pair, (3.0, 3), TypeError, "a positive integer or a pair of them, got (3.0, 3)"),
    (arguments.positive_pair, None, TypeError, "a positive integer or a pair of them, got None"),
    (arguments.padding, -1, ValueError, "a non-negative integer or a pair of them, got -1"),
    (arguments.fraction, 1.5, ValueError, "a number between 0 and 1, got 1.5"),
    (arguments.fraction, math.nan, ValueError, "a number between 0 and 1, got nan"),
    (arguments.fraction, "0.5", TypeError, "a number between 0 and 1, got '0.5'"),
    (arguments.positive_number, 0, ValueError, "a positive number, got 0"),
    (arguments.positive_number, math.inf, ValueError, "a positive number, got inf"),
    (arguments.positive_number, "1e-5", TypeError, "a positive number, got '1e-5'"),
    (arguments.number, math.inf, ValueError, "a finite number, got inf"),
    (arguments.number, None, TypeError, "a number, got None"),
    (arguments.flag, "false", TypeError, "true or false, got 'false'"),
    (arguments.flag, 2, TypeError, "true or false, got 2"),
])
def test_refusals_name_the_layer_the_argument_the_value_and_what_is_expected(check, value, error, message):
    with pytest.raises(error, match="^" + re.escape(f"Probe: x must be {message}") + "$"):
        check(Probe(), "x", value)


# --- every built-in layer -------------------------------------------------------------------------

CONV = dict(in_channels=1, out_channels=6, kernel_size=3)
BAD_ARGUMENTS = {
    nn.Conv2d: [
        ({**CONV, "in_channels": "one"}, TypeError, "in_channels must be a positive integer, got 'one'"),
        ({**CONV, "out_channels": 6.5}, TypeError, "out_channels must be a positive integer, got 6.5"),
        ({**CONV, "out_channels": 0}, ValueError, "out_channels must be a positive integer, got 0"),
        ({**CONV, "kernel_size": (5, 0)}, ValueError, "kernel_size must be a positive integer or a pair of them, got (5, 0)"),
        ({**CONV, "stride": 0}, ValueError, "stride must be a positive integer or a pair of them, got 0"),
        ({**CONV, "padding": -1}, ValueError, "padding must be a non-negative integer or a pair of them, or one of"),
        ({**CONV, "padding": "half"}, ValueError,
         "padding must be a non-negative integer or a pair of them, or one of 'valid', 'same', 'full', got 'half'"),
        ({**CONV, "dilation": (1,)}, TypeError, "dilation must be a positive integer or a pair of them, got (1,)"),
        ({**CONV, "groups": 0}, ValueError, "groups must be a positive integer, got 0"),
        (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), ValueError, "groups=2 must divide in_channels=3"),
        ({**CONV, "padding": "same", "stride": 2}, ValueError, "padding='same' needs stride 1, got stride=2"),
        ({**CONV, "bias": "false"}, TypeError, "bias must be true or false, got 'false'"),
    ],
    nn.Linear: [
        (dict(in_features=0, out_features=3), ValueError, "in_features must be a positive integer, got 0"),
        (dict(in_features=4, out_features=2.0), TypeError, "out_features must be a positive integer, got 2.0"),
        (dict(in_features=4, out_features=2, bias=None), TypeError, "bias must be true or false, got None"),
    ],
    nn.MaxPool2d: [
        (dict(kernel_size=0), ValueError, "kernel_size must be a positive integer or a pair of them, got 0"),
        (dict(kernel_size=2, stride=(2, 0)), ValueError, "stride must be a positive integer or a pair of them, got (2, 0)"),
        (dict(kernel_size=3, padding=2), ValueError, "padding must be at most half of kernel_size, got padding=2"),
        (dict(kernel_size=2, ceil_mode="yes"), TypeError, "ceil_mode must be true or false, got 'yes'"),
    ],
    nn.AvgPool2d: [
        (dict(kernel_size="2"), TypeError, "kernel_size must be a positive integer or a pair of them, got '2'"),
        (dict(kernel_size=2, padding=-1), ValueError, "padding must be a non-negative integer or a pair of them, got -1"),
        (dict(kernel_size=2, count_include_pad="no"), TypeError, "count_include_pad must be true or false, got 'no'"),
    ],
    nn.AdaptiveAvgPool2d: [
        (dict(output_size=0), ValueError,
         "output_size must be a positive integer or a pair of them (None keeps that side), got 0"),
        (dict(output_size=(7, 2.5)), TypeError, "output_size must be a positive integer or a pair"),
    ],
    nn.BatchNorm1d: [
        (dict(num_features=0), ValueError, "num_features must be a positive integer, got 0"),
        (dict(num_features=3, eps=0), ValueError, "eps must be a positive number, got 0"),
    ],
    nn.BatchNorm2d: [
        (dict(num_features=3.0), TypeError, "num_features must be a positive integer, got 3.0"),
        (dict(num_features=3, momentum=1.5), ValueError, "momentum must be a number between 0 and 1, got 1.5"),
        (dict(num_features=3, affine="yes"), TypeError, "affine must be true or false, got 'yes'"),
        (dict(num_features=3, track_running_stats=2), TypeError, "track_running_stats must be true or false, got 2"),
    ],
    nn.LocalResponseNorm: [
        (dict(size=0), ValueError, "size must be a positive integer, got 0"),
        (dict(size=5, alpha="1e-4"), TypeError, "alpha must be a number, got '1e-4'"),
        (dict(size=5, k=math.inf), ValueError, "k must be a finite number, got inf"),
    ],
    nn.Dropout: [
        (dict(p=1.5), ValueError, "p must be a number between 0 and 1, got 1.5"),
        (dict(p="0.5"), TypeError, "p must be a number between 0 and 1, got '0.5'"),
        (dict(inplace="yes"), TypeError, "inplace must be true or false, got 'yes'"),
    ],
    nn.Softmax: [(dict(dim=1.5), TypeError, "dim must be an integer, got 1.5")],
    nn.LogSoftmax: [(dict(dim=None), TypeError, "dim must be an integer, got None")],
    nn.Flatten: [
        (dict(start_dim="1"), TypeError, "start_dim must be an integer, got '1'"),
        (dict(end_dim=-1.0), TypeError, "end_dim must be an integer, got -1.0"),
    ],
    nn.ReLU: [(dict(inplace="true"), TypeError, "inplace must be true or false, got 'true'")],
}


def test_every_layer_with_arguments_has_bad_argument_cases():
    takes_arguments = {cls for cls in nn.LAYERS if inspect.signature(cls).parameters}
    assert set(BAD_ARGUMENTS) == takes_arguments - {nn.Identity}  # Identity takes and ignores anything


@pytest.mark.parametrize("cls, kwargs, error, message", [
    pytest.param(cls, kwargs, error, message, id=f"{cls.__name__}-{index}-{message.split()[0]}")
    for cls, cases in BAD_ARGUMENTS.items() for index, (kwargs, error, message) in enumerate(cases)
])
def test_a_bad_argument_is_refused_when_the_layer_is_built(cls, kwargs, error, message):
    with pytest.raises(error, match="^" + re.escape(f"{cls.__name__}: {message}")):
        cls(**kwargs)


# --- what PyTorch accepts, minicnn accepts with the same meaning ----------------------------------

ACCEPTED = {
    "conv": (lambda lib: lib.Conv2d(2, 4, 3), (1, 2, 6, 6)),
    "conv_pairs_as_lists": (lambda lib: lib.Conv2d(2, 4, [3, 1], stride=(2, 1), padding=[1, 0]), (1, 2, 7, 6)),
    "conv_same_dilated_grouped": (lambda lib: lib.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2), (1, 4, 7, 7)),
    "conv_valid_bias_0": (lambda lib: lib.Conv2d(2, 4, 3, padding="valid", bias=0), (1, 2, 5, 5)),
    "conv_numpy_sizes": (lambda lib: lib.Conv2d(np.int64(2), np.int64(4), np.array([3, 2])), (1, 2, 5, 5)),
    "linear_numpy_sizes": (lambda lib: lib.Linear(np.int32(5), 3, bias=False), (2, 5)),
    "max_pool": (lambda lib: lib.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 8, 8)),
    "max_pool_pairs": (lambda lib: lib.MaxPool2d((2, 3), stride=(1, 2)), (1, 2, 5, 7)),
    "max_pool_numpy": (lambda lib: lib.MaxPool2d(np.int64(2)), (1, 2, 4, 4)),
    "avg_pool": (lambda lib: lib.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 2, 7, 7)),
    "adaptive_keep_height": (lambda lib: lib.AdaptiveAvgPool2d((None, 3)), (1, 2, 5, 7)),
    "adaptive_global": (lambda lib: lib.AdaptiveAvgPool2d(1), (1, 2, 5, 7)),
    "batch_norm_1d": (lambda lib: lib.BatchNorm1d(3, eps=1e-3, momentum=None), (4, 3)),
    "batch_norm_2d_batch_stats": (
        lambda lib: lib.BatchNorm2d(np.int64(3), momentum=0, affine=False, track_running_stats=False), (2, 3, 4, 4),
    ),
    "lrn_integer_k": (lambda lib: lib.LocalResponseNorm(3, alpha=0.1, beta=0.75, k=2), (2, 5, 3, 3)),
    "dropout_p_1": (lambda lib: lib.Dropout(1), (2, 3)),
    "dropout_numpy_p": (lambda lib: lib.Dropout(np.float32(0.25), inplace=True), (2, 3)),
    "softmax": (lambda lib: lib.Softmax(dim=1), (2, 5)),
    "log_softmax": (lambda lib: lib.LogSoftmax(0), (2, 5)),
    "flatten": (lambda lib: lib.Flatten(0, 2), (2, 3, 4, 5)),
    "flatten_numpy": (lambda lib: lib.Flatten(np.int64(1)), (2, 3, 4)),
    "relu_inplace": (lambda lib: lib.ReLU(inplace=True), (2, 3)),
}


@pytest.mark.parametrize("build, x_shape", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_what_torch_accepts_is_accepted_and_computes_the_same(build, x_shape):
    torch = pytest.importorskip("torch")
    reference, layer = build(torch.nn).double().eval(), build(nn).double().eval()
    layer.load_state_dict({key: value.numpy() for key, value in reference.state_dict().items()})
    x = np.random.default_rng(5).standard_normal(x_shape)
    expected = reference(torch.from_numpy(x.copy())).detach().numpy()
    np.testing.assert_allclose(layer(mc.tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12)
