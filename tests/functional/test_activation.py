"""relu, sigmoid, tanh, softmax, log_softmax against NumPy formulas, hand values and finite differences."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.testing import gradcheck


@contextlib.contextmanager
def no_float_warnings():
    """Overflow, invalid operations (NaN), division by zero and any warning become errors.
    Underflow of exp to 0 is the intended outcome of a stable formula and stays allowed."""
    with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def sample(shape, seed=0, scale=3.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def away_from_zero(shape, seed=0):
    """Values with |x| >= 0.1, so relu's kink is never inside a finite-difference step."""
    x = sample(shape, seed)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * 0.5, x)


# --- values ---------------------------------------------------------------------------------------

def test_relu_values():
    x = sample((3, 4, 5))
    np.testing.assert_array_equal(F.relu(mc.tensor(x)).numpy(), np.maximum(x, 0))
    np.testing.assert_array_equal(F.relu(mc.tensor([-2.0, 0.0, 3.5])).numpy(), [0.0, 0.0, 3.5])


def test_relu_gradient_is_the_step():
    x = mc.tensor([-2.0, -0.5, 0.5, 3.0], requires_grad=True)
    F.relu(x).backward(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 3, 4])


def test_sigmoid_values():
    x = sample((4, 6), scale=2.0)
    np.testing.assert_allclose(F.sigmoid(mc.tensor(x)).numpy(), 1.0 / (1.0 + np.exp(-x)), rtol=1e-12)
    assert F.sigmoid(mc.tensor([0.0])).item() == 0.5


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_sigmoid_keeps_relative_accuracy_over_the_whole_range(dtype, rtol):
    """1 / (1 + e^-x) does not overflow for |x| <= 80 in either dtype, and there it is accurate to a
    few ulps; sigmoid should be too, including its tiny values for negative x (e.g. sigmoid(-20)
    = 2.06e-9 in float32, sigmoid(-40) = 4.2e-18 in float64), not only up to an absolute error."""
    x = np.linspace(-80.0, 80.0, 321).astype(dtype)
    expected = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    y = F.sigmoid(mc.tensor(x))
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_huge_inputs(dtype):
    x = np.array([-1000.0, -100.0, 100.0, 1000.0], dtype=dtype)
    with no_float_warnings():
        y = F.sigmoid(mc.tensor(x)).numpy()
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, [0.0, 0.0, 1.0, 1.0], atol=1e-30)


def test_tanh_values():
    x = sample((5, 3))
    np.testing.assert_allclose(F.tanh(mc.tensor(x)).numpy(), (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1), rtol=1e-12, atol=1e-15)
    with no_float_warnings():
        np.testing.assert_array_equal(F.tanh(mc.tensor([-1000.0, 1000.0])).numpy(), [-1.0, 1.0])


def naive_softmax(x, axis):
    """exp(x) / Σ exp(x), not shifted: valid for moderate x only."""
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_softmax_values_and_sums_along_any_dim(dim):
    x = sample((3, 4, 5))
    y = F.softmax(mc.tensor(x), dim=dim).numpy()
    np.testing.assert_allclose(y, naive_softmax(x, dim), rtol=1e-12)
    np.testing.assert_allclose(y.sum(axis=dim), np.ones(np.delete(x.shape, dim)), rtol=1e-12)
    assert (y > 0).all()


def test_softmax_default_dim_is_last():
    x = sample((4, 3))
    np.testing.assert_allclose(F.softmax(mc.tensor(x)).numpy(), naive_softmax(x, 1), rtol=1e-12)


def test_softmax_hand_values():
    y = F.softmax(mc.tensor(np.array([[0.0, np.log(3.0)]]))).numpy()
    np.testing.assert_allclose(y, [[0.25, 0.75]], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_stable_for_large_logits(dtype):
    """softmax is shift-invariant: logits near 1000 give what the same logits minus 1000 give."""
    small = np.array([[0.0, 1.0, 2.0], [-3.0, 0.5, 0.0]])
    with no_float_warnings():
        y = F.softmax(mc.tensor((small + 1000.0).astype(dtype))).numpy()
        rows_sum = y.sum(axis=1)
    np.testing.assert_allclose(y, naive_softmax(small, 1), rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(rows_sum, [1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_log_softmax_values(dim):
    x = sample((3, 4, 5))
    y = F.log_softmax(mc.tensor(x), dim=dim).numpy()
    np.testing.assert_allclose(y, np.log(naive_softmax(x, dim)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(y).sum(axis=dim), 1.0, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_is_stable_for_large_logits(dtype):
    """log softmax([1000, 0]) = [-log(1 + e^-1000), -1000 - log(1 + e^-1000)] = [0, -1000]; the
    naive log(exp(x) / Σ exp(x)) would give NaN and -inf."""
    with no_float_warnings():
        y = F.log_softmax(mc.tensor(np.array([[1000.0, 0.0], [1000.0, 1000.0]], dtype=dtype))).numpy()
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, [[0.0, -1000.0], [-np.log(2.0), -np.log(2.0)]], rtol=1e-6, atol=1e-6)
    small = np.array([[0.0, 1.0, 2.0]])
    with no_float_warnings():
        shifted = F.log_softmax(mc.tensor((small + 1000.0).astype(dtype))).numpy()
    np.testing.assert_allclose(shifted, np.log(naive_softmax(small, 1)), rtol=1e-5, atol=1e-5)


def test_log_softmax_is_log_of_softmax():
    x = sample((6, 7), seed=3)
    np.testing.assert_allclose(F.log_softmax(mc.tensor(x), dim=0).numpy(),
                               np.log(F.softmax(mc.tensor(x), dim=0).numpy()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", [F.relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax])
def test_activations_keep_shape_and_float32(op):
    x = mc.tensor(sample((2, 3, 4)).astype(np.float32))
    y = op(x)
    assert y.shape == (2, 3, 4)
    assert y.dtype == np.float32


# --- gradients ------------------------------------------------------------------------------------

def test_relu_gradcheck():
    gradcheck(F.relu, [away_from_zero((3, 4, 5))])


@pytest.mark.parametrize("op", [F.sigmoid, F.tanh], ids=["sigmoid", "tanh"])
def test_sigmoid_tanh_gradcheck(op):
    gradcheck(op, [sample((3, 4, 5), scale=2.0)])


def test_sigmoid_gradient_hand_value():
    x = mc.tensor([0.0, 2.0], requires_grad=True)
    F.sigmoid(x).sum().backward()
    s = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(x.grad.numpy(), [0.25, s * (1 - s)], rtol=1e-6)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("op", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_family_gradcheck(op, dim):
    gradcheck(lambda x: op(x, dim=dim), [sample((3, 4, 5), seed=dim + 10, scale=1.5)])


@pytest.mark.parametrize("op", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_family_gradcheck_large_logits(op):
    x = sample((2, 5), seed=4) + 1000.0
    gradcheck(lambda x: op(x, dim=1), [x], eps=1e-5)
