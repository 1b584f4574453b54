"""Activation layers: NumPy formulas, the functional ops they wrap, and torch's layers."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.testing import gradcheck


def sample(shape=(3, 4, 5), seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 3


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


FORMULAS = {
    "relu": (lambda: nn.ReLU(), lambda x: np.maximum(x, 0)),
    "relu_inplace": (lambda: nn.ReLU(inplace=True), lambda x: np.maximum(x, 0)),
    "sigmoid": (lambda: nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (lambda: nn.Tanh(), np.tanh),
    "softmax_last": (lambda: nn.Softmax(), lambda x: np_softmax(x, -1)),
    "softmax_dim1": (lambda: nn.Softmax(dim=1), lambda x: np_softmax(x, 1)),
    "log_softmax_dim1": (lambda: nn.LogSoftmax(dim=1), lambda x: np.log(np_softmax(x, 1))),
    "log_softmax_dim0": (lambda: nn.LogSoftmax(0), lambda x: np.log(np_softmax(x, 0))),
}


@pytest.mark.parametrize("make, formula", FORMULAS.values(), ids=FORMULAS.keys())
def test_forward_matches_numpy_formula(make, formula):
    x = sample()
    out = make()(mc.tensor(x))
    assert out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), formula(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, formula", FORMULAS.values(), ids=FORMULAS.keys())
def test_gradcheck(make, formula):
    assert gradcheck(make(), [sample((2, 3, 4), seed=1)])


def test_layers_are_the_functional_ops():
    x = mc.tensor(sample(seed=2).astype(np.float32))
    pairs = [
        (nn.ReLU(), F.relu(x)), (nn.Sigmoid(), F.sigmoid(x)), (nn.Tanh(), F.tanh(x)),
        (nn.Softmax(dim=1), F.softmax(x, 1)), (nn.LogSoftmax(dim=2), F.log_softmax(x, 2)),
    ]
    for layer, expected in pairs:
        np.testing.assert_array_equal(layer(x).numpy(), expected.numpy(), err_msg=type(layer).__name__)


def test_relu_inplace_is_accepted_and_leaves_the_input_alone():
    x = np.array([-1.0, 0.5, -2.0, 3.0])
    t = mc.tensor(x)
    np.testing.assert_array_equal(nn.ReLU(inplace=True)(t).numpy(), [0.0, 0.5, 0.0, 3.0])
    np.testing.assert_array_equal(t.numpy(), x)


def test_activations_have_no_parameters():
    for layer in (nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.Softmax(), nn.LogSoftmax()):
        assert list(layer.parameters()) == [] and list(layer.state_dict()) == []


def test_softmax_repr_names_its_dim():
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.LogSoftmax(dim=0)) == "LogSoftmax(dim=0)"
    assert repr(nn.ReLU()) == "ReLU()"


TORCH_CASES = {
    "relu": ("ReLU", {}), "relu_inplace": ("ReLU", dict(inplace=True)), "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}), "softmax": ("Softmax", dict(dim=1)), "log_softmax": ("LogSoftmax", dict(dim=-1)),
}


@pytest.mark.parametrize("name, kwargs", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    x = sample(seed=3)
    expected = getattr(torch.nn, name)(**kwargs)(torch.from_numpy(x.copy())).numpy()
    np.testing.assert_allclose(getattr(nn, name)(**kwargs)(mc.tensor(x)).numpy(), expected, rtol=1e-12, atol=1e-12)
