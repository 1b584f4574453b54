"""batch_norm and local_response_norm against hand formulas, naive loops and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.testing import gradcheck

EPS = 1e-5


def sample(shape, seed=0, loc=3.0, scale=2.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + loc


def channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


# --- batch_norm: training -------------------------------------------------------------------------

SHAPES = [(16, 3), (4, 3, 5), (4, 2, 3, 5), (2, 3, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_training_output_has_zero_mean_unit_variance(shape):
    x = sample(shape, seed=1) * np.arange(1, shape[1] + 1).reshape((1, -1) + (1,) * (len(shape) - 2))
    c = shape[1]
    y = F.batch_norm(mc.tensor(x), np.zeros(c), np.ones(c), np.ones(c), np.zeros(c), training=True).numpy()
    axes = channel_axes(x)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-10)
    batch_var = x.var(axis=axes)
    np.testing.assert_allclose(y.var(axis=axes), batch_var / (batch_var + EPS), rtol=1e-10)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, atol=1e-3)


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_training_matches_hand_formula(shape):
    x = sample(shape, seed=2)
    c = shape[1]
    weight, bias = sample((c,), seed=3), sample((c,), seed=4)
    y = F.batch_norm(mc.tensor(x), None, None, mc.tensor(weight), mc.tensor(bias), training=True).numpy()
    axes = channel_axes(x)
    mean = x.mean(axis=axes)
    var = ((x - per_channel(mean, x.ndim)) ** 2).mean(axis=axes)  # biased, as in the normalisation
    expected = (x - per_channel(mean, x.ndim)) / np.sqrt(per_channel(var, x.ndim) + EPS)
    expected = expected * per_channel(weight, x.ndim) + per_channel(bias, x.ndim)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.1, 0.3, 1.0])
def test_batch_norm_running_stats_use_momentum_and_unbiased_variance(shape, momentum):
    x = sample(shape, seed=5)
    c = shape[1]
    old_mean, old_var = sample((c,), seed=6), sample((c,), seed=7) ** 2 + 0.5
    running_mean, running_var = old_mean.copy(), old_var.copy()
    mean_id, var_id = id(running_mean), id(running_var)
    F.batch_norm(mc.tensor(x), running_mean, running_var, training=True, momentum=momentum)
    axes = channel_axes(x)
    n = x.size // c
    batch_mean = x.mean(axis=axes)
    unbiased_var = ((x - per_channel(batch_mean, x.ndim)) ** 2).sum(axis=axes) / (n - 1)
    assert id(running_mean) == mean_id and id(running_var) == var_id
    np.testing.assert_allclose(running_mean, (1 - momentum) * old_mean + momentum * batch_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, (1 - momentum) * old_var + momentum * unbiased_var, rtol=1e-12)


def test_batch_norm_running_stats_hand_values():
    """One channel, batch [1, 3]: mean 2, biased variance 1, unbiased variance 2."""
    running_mean, running_var = np.zeros(1), np.ones(1)
    F.batch_norm(mc.tensor(np.array([[1.0], [3.0]])), running_mean, running_var, training=True, momentum=0.1)
    np.testing.assert_allclose(running_mean, [0.2])
    np.testing.assert_allclose(running_var, [0.9 * 1 + 0.1 * 2])


def test_batch_norm_running_stats_accumulate_over_steps():
    running_mean, running_var = np.zeros(2), np.ones(2)
    expected_mean, expected_var = np.zeros(2), np.ones(2)
    for step in range(3):
        x = sample((5, 2), seed=10 + step)
        F.batch_norm(mc.tensor(x), running_mean, running_var, training=True, momentum=0.2)
        expected_mean = 0.8 * expected_mean + 0.2 * x.mean(axis=0)
        expected_var = 0.8 * expected_var + 0.2 * x.var(axis=0, ddof=1)
    np.testing.assert_allclose(running_mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, expected_var, rtol=1e-12)


def test_batch_norm_running_stats_as_tensors_are_updated_in_place():
    x = sample((6, 3, 2, 2), seed=8)
    running_mean, running_var = mc.tensor(np.zeros(3)), mc.tensor(np.ones(3))
    mean_array, var_array = running_mean.data, running_var.data
    F.batch_norm(mc.tensor(x), running_mean, running_var, training=True, momentum=0.1)
    assert running_mean.data is mean_array and running_var.data is var_array
    np.testing.assert_allclose(running_mean.numpy(), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)


def test_batch_norm_float32_running_stats_stay_float32():
    x = sample((8, 3), seed=9).astype(np.float32)
    running_mean, running_var = np.zeros(3, dtype=np.float32), np.ones(3, dtype=np.float32)
    y = F.batch_norm(mc.tensor(x), running_mean, running_var, training=True)
    assert y.dtype == np.float32 and running_mean.dtype == np.float32
    np.testing.assert_allclose(running_mean, 0.1 * x.astype(np.float64).mean(axis=0), rtol=1e-5)


# --- batch_norm: evaluation -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_eval_uses_running_stats(shape):
    x = sample(shape, seed=11)
    c = shape[1]
    running_mean, running_var = sample((c,), seed=12), sample((c,), seed=13) ** 2 + 0.1
    weight, bias = sample((c,), seed=14), sample((c,), seed=15)
    before = running_mean.copy(), running_var.copy()
    y = F.batch_norm(mc.tensor(x), running_mean, running_var, weight, bias, training=False).numpy()
    expected = (x - per_channel(running_mean, x.ndim)) / np.sqrt(per_channel(running_var, x.ndim) + EPS)
    expected = expected * per_channel(weight, x.ndim) + per_channel(bias, x.ndim)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(running_mean, before[0])
    np.testing.assert_array_equal(running_var, before[1])


def test_batch_norm_eval_hand_value():
    y = F.batch_norm(mc.tensor(np.array([[5.0, -1.0]])), np.array([1.0, 0.0]), np.array([4.0, 1.0]),
                     np.array([2.0, 1.0]), np.array([0.5, 0.0]), eps=0.0)
    np.testing.assert_allclose(y.numpy(), [[(5 - 1) / 2 * 2 + 0.5, -1.0]])


def test_batch_norm_eps_is_used():
    x = np.array([[0.0], [2.0]])  # biased variance 1
    y = F.batch_norm(mc.tensor(x), None, None, training=True, eps=3.0).numpy()
    np.testing.assert_allclose(y.ravel(), [-0.5, 0.5])


# --- batch_norm: gradients ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 2), (2, 2, 5)])
def test_batch_norm_training_gradcheck(shape):
    c = shape[1]
    x, weight, bias = sample(shape, seed=16), sample((c,), seed=17), sample((c,), seed=18)
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, weight, bias])


def test_batch_norm_training_gradcheck_with_running_stats_and_no_affine():
    x = sample((4, 3, 2, 2), seed=19)
    running_mean, running_var = np.zeros(3), np.ones(3)
    gradcheck(lambda x: F.batch_norm(x, running_mean, running_var, training=True), [x])


def test_batch_norm_training_gradcheck_weight_only():
    x, weight = sample((5, 2, 3), seed=20), sample((2,), seed=21)
    gradcheck(lambda x, w: F.batch_norm(x, None, None, w, training=True), [x, weight])


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 2)])
def test_batch_norm_eval_gradcheck(shape):
    c = shape[1]
    x, weight, bias = sample(shape, seed=22), sample((c,), seed=23), sample((c,), seed=24)
    running_mean, running_var = sample((c,), seed=25), sample((c,), seed=26) ** 2 + 0.1
    gradcheck(lambda x, w, b: F.batch_norm(x, running_mean, running_var, w, b, training=False), [x, weight, bias])


def test_batch_norm_eval_gradient_hand_formula():
    c = 3
    x = sample((4, c), seed=27)
    running_mean, running_var = sample((c,), seed=28), sample((c,), seed=29) ** 2 + 0.1
    weight = sample((c,), seed=30)
    t = mc.tensor(x, requires_grad=True)
    F.batch_norm(t, running_mean, running_var, weight, training=False).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), np.broadcast_to(weight / np.sqrt(running_var + EPS), x.shape), rtol=1e-10)


# --- batch_norm: errors ---------------------------------------------------------------------------

def test_batch_norm_eval_needs_running_stats():
    with pytest.raises(ValueError, match=r"batch_norm.*running_mean and running_var"):
        F.batch_norm(mc.tensor(np.zeros((2, 3))), None, None, training=False)


def test_batch_norm_rejects_wrong_parameter_shape():
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(3,\)"):
        F.batch_norm(mc.tensor(np.zeros((2, 3))), None, None, np.ones(4), training=True)


def test_batch_norm_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match="batch_norm.*more than one value"):
        F.batch_norm(mc.tensor(np.zeros((1, 3))), None, None, training=True)


# --- local_response_norm --------------------------------------------------------------------------

def reference_lrn(x, size, alpha, beta, k):
    """y_c = x_c / (k + alpha/size * Σ_{c' = c - size//2 .. c + (size-1)//2} x_{c'}^2)^beta, zeros past the edges."""
    channels = x.shape[1]
    y = np.empty_like(x)
    for c in range(channels):
        total = np.zeros_like(x[:, 0])
        for other in range(c - size // 2, c + (size - 1) // 2 + 1):
            if 0 <= other < channels:
                total += x[:, other] ** 2
        y[:, c] = x[:, c] / (k + alpha / size * total) ** beta
    return y


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(2, 6, 3, 2), (1, 5, 4)])
def test_local_response_norm_matches_naive_reference(shape, size):
    x = sample(shape, seed=31, loc=0.0)
    alpha, beta, k = 0.7, 0.75, 2.0
    y = F.local_response_norm(mc.tensor(x), size, alpha=alpha, beta=beta, k=k)
    assert y.shape == shape
    np.testing.assert_allclose(y.numpy(), reference_lrn(x, size, alpha, beta, k), rtol=1e-12)


def test_local_response_norm_alexnet_settings():
    x = sample((2, 7, 3, 3), seed=32, loc=0.0, scale=30.0)
    y = F.local_response_norm(mc.tensor(x), 5, alpha=1e-4, beta=0.75, k=2.0)
    np.testing.assert_allclose(y.numpy(), reference_lrn(x, 5, 1e-4, 0.75, 2.0), rtol=1e-12)


def test_local_response_norm_defaults():
    x = sample((1, 4, 2, 2), seed=33, loc=0.0, scale=50.0)
    y = F.local_response_norm(mc.tensor(x), 3)
    np.testing.assert_allclose(y.numpy(), reference_lrn(x, 3, 1e-4, 0.75, 1.0), rtol=1e-12)


def test_local_response_norm_hand_value():
    """Channels [1, 2, 3], size 2 (window c-1 .. c), alpha=2, beta=1, k=1:
    s = 1 + [1, 1+4, 4+9] -> y = [1/2, 2/6, 3/14]."""
    x = mc.tensor(np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1))
    y = F.local_response_norm(x, 2, alpha=2.0, beta=1.0, k=1.0)
    np.testing.assert_allclose(y.numpy().ravel(), [1 / 2, 2 / 6, 3 / 14])


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm_gradcheck(size):
    x = sample((2, 5, 2, 3), seed=34 + size, loc=0.0)
    gradcheck(lambda x: F.local_response_norm(x, size, alpha=0.9, beta=0.75, k=1.5), [x])


def test_local_response_norm_gradcheck_3d_input():
    x = sample((2, 4, 3), seed=40, loc=0.0)
    gradcheck(lambda x: F.local_response_norm(x, 4, alpha=1.2, beta=0.6, k=1.0), [x])


def test_local_response_norm_errors():
    with pytest.raises(ValueError, match=r"local_response_norm.*\(N, C, \.\.\.\)"):
        F.local_response_norm(mc.tensor(np.zeros((2, 3))), 3)
    with pytest.raises(ValueError, match="local_response_norm.*size"):
        F.local_response_norm(mc.tensor(np.zeros((2, 3, 4))), 0)
