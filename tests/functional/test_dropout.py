"""dropout: identity outside training, inverted-dropout statistics, reproducible masks (on a GPU
too, across a checkpoint), gradients."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import backend
from minicnn.testing import gradcheck


def positive(shape, seed=0):
    """Values in [1, 2): never zero, so a zero in the output always means a dropped unit."""
    return (np.random.default_rng(seed).random(shape) + 1.0).astype(np.float32)


def test_not_training_returns_input_unchanged():
    x = mc.tensor(positive((4, 5)))
    y = F.dropout(x, p=0.5, training=False)
    np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_p_zero_returns_input_unchanged():
    x = mc.tensor(positive((4, 5)))
    np.testing.assert_array_equal(F.dropout(x, p=0.0).numpy(), x.numpy())


def test_not_training_passes_gradient_through():
    x = mc.tensor(positive((3, 4)), requires_grad=True)
    (F.dropout(x, p=0.7, training=False) * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 2.0))


def test_p_one_gives_zeros_and_zero_gradient():
    x = mc.tensor(positive((4, 5)), requires_grad=True)
    y = F.dropout(x, p=1.0)
    np.testing.assert_array_equal(y.numpy(), np.zeros((4, 5)))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((4, 5)))


def test_default_is_training_with_half_dropped():
    mc.manual_seed(1)
    y = F.dropout(mc.tensor(np.ones((200_000,), dtype=np.float32))).numpy()
    assert abs((y == 0).mean() - 0.5) < 0.01
    np.testing.assert_allclose(y[y != 0], 2.0)


def test_drop_fraction_and_survivor_scale():
    p = 0.3
    mc.manual_seed(2)
    x = positive((1000, 1000), seed=3)
    y = F.dropout(mc.tensor(x), p=p).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    dropped = y == 0
    # binomial: standard deviation of the fraction is sqrt(p(1-p)/n) ~ 4.6e-4
    assert abs(dropped.mean() - p) < 0.003
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - p), rtol=1e-6)


def test_mean_is_preserved():
    p = 0.3
    mc.manual_seed(4)
    y = F.dropout(mc.tensor(np.ones((1_000_000,), dtype=np.float32)), p=p).numpy()
    # each output is 0 or 1/(1-p): variance p/(1-p), so the mean's standard deviation is ~6.5e-4
    assert abs(y.mean() - 1.0) < 0.005


def test_manual_seed_makes_the_mask_reproducible():
    x = mc.tensor(positive((50, 40)))
    mc.manual_seed(123)
    first = F.dropout(x, p=0.4).numpy()
    second_draw = F.dropout(x, p=0.4).numpy()
    mc.manual_seed(123)
    again = F.dropout(x, p=0.4).numpy()
    mc.manual_seed(124)
    other_seed = F.dropout(x, p=0.4).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first == 0, second_draw == 0)
    assert not np.array_equal(first == 0, other_seed == 0)


class FakeGpuArray(np.ndarray):
    """An array whose type says it is CuPy's, on GPU 0: all that backend.device_of reads."""

    device = SimpleNamespace(id=0)


FakeGpuArray.__module__ = "cupy"


def numpy_uniform(target):
    """Stands in for cuRAND on a GPU: each draw's uniforms from NumPy, keyed the same way."""
    return lambda key, shape, dtype: np.random.default_rng(key).random(shape, dtype)


def test_gpu_masks_come_from_the_device_stream_and_a_restored_state_replays_them(monkeypatch):
    monkeypatch.setattr(backend, "_philox_uniform", numpy_uniform)
    monkeypatch.setattr(backend, "_generators", {})
    x = mc.Tensor(positive((50, 40)).view(FakeGpuArray))
    mc.manual_seed(3)
    first = F.dropout(x, p=0.4).data
    state = backend.get_rng_state()
    second = F.dropout(x, p=0.4).data
    mc.manual_seed(3)  # a resumed run seeds again, then restores the checkpoint's state
    backend.set_rng_state(state)
    np.testing.assert_array_equal(F.dropout(x, p=0.4).data, second)
    assert not np.array_equal(first == 0, second == 0) and 0 < (second == 0).mean() < 1
    assert backend.random_generator("cuda").state == {"seed": 3, "draws": 2}


def test_gradient_equals_the_mask_scale():
    p = 0.25
    mc.manual_seed(5)
    x = mc.tensor(positive((30, 20)), requires_grad=True)
    y = F.dropout(x, p=p)
    upstream = np.random.default_rng(6).standard_normal((30, 20)).astype(np.float32)
    y.backward(upstream)
    kept = y.numpy() != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(x.grad.numpy(), upstream * kept / (1 - p), rtol=1e-6)


def test_dropout_gradcheck_with_fixed_mask():
    def fn(x):
        mc.manual_seed(7)  # the same mask on every call
        return F.dropout(x, p=0.4)

    x = np.random.default_rng(8).standard_normal((6, 7))
    assert gradcheck(fn, [x])


@pytest.mark.parametrize("p", [-0.1, 1.5, 2.0])
def test_p_outside_unit_interval_raises(p):
    with pytest.raises(ValueError, match=r"dropout.*between 0 and 1"):
        F.dropout(mc.tensor(positive((2, 2))), p=p)


@pytest.mark.parametrize("training", [True, False])
def test_p_outside_unit_interval_raises_even_when_not_training(training):
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(mc.tensor(positive((2, 2))), p=-1.0, training=training)
