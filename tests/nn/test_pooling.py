"""Pooling layers: PyTorch's defaults (stride = kernel_size, floor mode), hand values, the functional
op they wrap, and torch's layers."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.testing import gradcheck

RAMP = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)


def sample(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_max_pool_stride_defaults_to_kernel_size():
    pool = nn.MaxPool2d(2)
    assert pool.stride is None and pool.padding == 0 and pool.ceil_mode is False
    np.testing.assert_array_equal(pool(mc.tensor(RAMP)).numpy(), [[[[5, 7], [13, 15]]]])


def test_max_pool_explicit_stride():
    out = nn.MaxPool2d(3, stride=1)(mc.tensor(RAMP)).numpy()
    np.testing.assert_array_equal(out, [[[[10, 11], [14, 15]]]])


def test_avg_pool_stride_defaults_to_kernel_size():
    pool = nn.AvgPool2d(2)
    assert pool.stride is None and pool.padding == 0 and pool.ceil_mode is False and pool.count_include_pad is True
    np.testing.assert_array_equal(pool(mc.tensor(RAMP)).numpy(), [[[[2.5, 4.5], [10.5, 12.5]]]])


def test_avg_pool_count_include_pad():
    """A 2x2 window with padding 1 on a 2x2 ones image: each corner window holds one real value."""
    ones = mc.tensor(np.ones((1, 1, 2, 2), dtype=np.float32))
    np.testing.assert_array_equal(nn.AvgPool2d(2, padding=1)(ones).numpy(), np.full((1, 1, 2, 2), 0.25))
    np.testing.assert_array_equal(nn.AvgPool2d(2, padding=1, count_include_pad=False)(ones).numpy(), np.ones((1, 1, 2, 2)))


def test_adaptive_avg_pool_to_one_is_the_spatial_mean():
    x = sample((2, 3, 5, 7))
    out = nn.AdaptiveAvgPool2d(1)(mc.tensor(x))
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(out.numpy(), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_divisible_size_is_plain_average_pooling():
    x = mc.tensor(sample((1, 2, 6, 8)))
    np.testing.assert_allclose(
        nn.AdaptiveAvgPool2d((3, 2))(x).numpy(), nn.AvgPool2d((2, 4))(x).numpy(), rtol=1e-6, atol=1e-6
    )


def test_pooling_layers_have_no_parameters():
    for layer in (nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)):
        assert list(layer.parameters()) == [] and list(layer.state_dict()) == []


CASES = {
    "max_k2": (nn.MaxPool2d, dict(kernel_size=2), F.max_pool2d),
    "max_k3_s2_p1": (nn.MaxPool2d, dict(kernel_size=3, stride=2, padding=1), F.max_pool2d),
    "max_pairs_ceil": (nn.MaxPool2d, dict(kernel_size=(2, 3), stride=(2, 2), ceil_mode=True), F.max_pool2d),
    "avg_k2": (nn.AvgPool2d, dict(kernel_size=2), F.avg_pool2d),
    "avg_k3_s2_p1": (nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1), F.avg_pool2d),
    "avg_no_pad_count_ceil": (
        nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), F.avg_pool2d,
    ),
    "adaptive_int": (nn.AdaptiveAvgPool2d, dict(output_size=3), F.adaptive_avg_pool2d),
    "adaptive_pair": (nn.AdaptiveAvgPool2d, dict(output_size=(2, 4)), F.adaptive_avg_pool2d),
}


@pytest.mark.parametrize("cls, kwargs, functional", CASES.values(), ids=CASES.keys())
def test_layer_is_the_functional_op(cls, kwargs, functional):
    x = mc.tensor(sample((2, 3, 7, 9)))
    np.testing.assert_array_equal(cls(**kwargs)(x).numpy(), functional(x, **kwargs).numpy())


@pytest.mark.parametrize("cls, kwargs, functional", CASES.values(), ids=CASES.keys())
def test_layer_matches_torch(cls, kwargs, functional):
    torch = pytest.importorskip("torch")
    x = sample((2, 3, 7, 9), seed=1)
    expected = getattr(torch.nn, cls.__name__)(**kwargs)(torch.from_numpy(x)).numpy()
    out = cls(**kwargs)(mc.tensor(x)).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs, functional", CASES.values(), ids=CASES.keys())
def test_layer_gradcheck(cls, kwargs, functional):
    x = np.random.default_rng(2).permutation(2 * 2 * 7 * 9).reshape(2, 2, 7, 9) / 8.0  # no ties for max
    assert gradcheck(cls(**kwargs), [x])


def test_keyword_defaults_match_torch():
    torch = pytest.importorskip("torch")
    for name in ("MaxPool2d", "AvgPool2d"):
        mine = inspect.signature(getattr(nn, name).__init__).parameters
        theirs = inspect.signature(getattr(torch.nn, name).__init__).parameters
        for arg in ("stride", "padding", "ceil_mode") + (("count_include_pad",) if name == "AvgPool2d" else ()):
            assert mine[arg].default == theirs[arg].default, f"{name}({arg}=...)"


def test_repr_shows_the_effective_stride():
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=False)"
    assert repr(nn.AvgPool2d(3, stride=1)) == "AvgPool2d(kernel_size=3, stride=1, padding=0)"
    assert repr(nn.AdaptiveAvgPool2d((1, 1))) == "AdaptiveAvgPool2d(output_size=(1, 1))"
