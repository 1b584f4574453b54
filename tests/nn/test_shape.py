"""Flatten and Identity: NumPy reshapes, torch's layers, and gradients that pass straight through."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.testing import gradcheck

X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)

FLATTEN_CASES = {
    "default": ({}, (2, 60)),
    "all": (dict(start_dim=0), (120,)),
    "middle": (dict(start_dim=1, end_dim=2), (2, 12, 5)),
    "negative": (dict(start_dim=-3, end_dim=-2), (2, 12, 5)),
    "last_two": (dict(start_dim=2), (2, 3, 20)),
    "one_axis": (dict(start_dim=1, end_dim=1), (2, 3, 4, 5)),
}


@pytest.mark.parametrize("kwargs, shape", FLATTEN_CASES.values(), ids=FLATTEN_CASES.keys())
def test_flatten_is_a_c_order_reshape(kwargs, shape):
    out = nn.Flatten(**kwargs)(mc.tensor(X))
    assert out.shape == shape
    np.testing.assert_array_equal(out.numpy(), X.reshape(shape))


@pytest.mark.parametrize("kwargs, shape", FLATTEN_CASES.values(), ids=FLATTEN_CASES.keys())
def test_flatten_matches_torch(kwargs, shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.Flatten(**kwargs)(torch.from_numpy(X)).numpy()
    np.testing.assert_array_equal(nn.Flatten(**kwargs)(mc.tensor(X)).numpy(), expected)


def test_flatten_defaults_keep_the_batch_axis():
    layer = nn.Flatten()
    assert (layer.start_dim, layer.end_dim) == (1, -1)
    assert list(layer.state_dict()) == []


def test_flatten_gradient_is_reshaped_back():
    x = mc.tensor(X.astype(np.float64), requires_grad=True)
    upstream = np.random.default_rng(0).standard_normal((2, 60))
    nn.Flatten()(x).backward(upstream)
    np.testing.assert_array_equal(x.grad.numpy(), upstream.reshape(X.shape))
    assert gradcheck(nn.Flatten(1, 2), [np.random.default_rng(1).standard_normal((2, 3, 2, 2))])


def test_identity_returns_its_input_and_accepts_any_arguments():
    x = mc.tensor(X)
    assert nn.Identity()(x) is x
    assert nn.Identity(54, unused_argument=0.1)(x) is x
    assert list(nn.Identity().parameters()) == []


def test_identity_gradient_passes_through():
    x = mc.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (nn.Identity()(x) * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
