"""Dropout on the GPU. Its mask comes from CuPy's generator, so values cannot match the CPU's; what
must hold instead: about 1-p of the elements kept, each kept one scaled by exactly 1/(1-p), the
gradient passing through the same mask, and masks that are new on every call yet repeat after
`manual_seed`."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.backend import gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]

SHAPE = (64, 33, 31)


def positive(rng, dtype):
    """Values in [0.5, 2): never zero, so a zero in the output always means a dropped element."""
    return rng.uniform(0.5, 2.0, SHAPE).astype(dtype)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_kept_fraction_scale_and_gradient_mask(p, dtype, rng):
    x_values = positive(rng, dtype)
    x = mc.tensor(x_values, requires_grad=True, device="cuda")
    y = F.dropout(x, p, training=True)
    assert y.device == mc.device("cuda") and y.dtype == dtype
    out = y.numpy()
    assert np.isfinite(out).all(), "dropout left NaN in its output"
    kept = out != 0
    # within 5 standard deviations of 1-p, overall and in every channel (a mask repeated along an
    # axis, or one that skipped part of the array, would miss this)
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / kept.size)
    per_channel = kept.mean(axis=(0, 2))
    assert np.all(np.abs(per_channel - (1 - p)) < 5 * np.sqrt(p * (1 - p) / (kept.size / SHAPE[1])))
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out[kept], x_values[kept] / (1 - p), rtol=rtol)

    weights = np.random.default_rng(1).standard_normal(SHAPE).astype(dtype)
    y.backward(mc.tensor(weights, device="cuda"))
    grad = x.grad.numpy()
    assert x.grad.device == mc.device("cuda")
    assert np.all(grad[~kept] == 0), "gradient reached a dropped element"
    np.testing.assert_allclose(grad[kept], weights[kept] / (1 - p), rtol=rtol)


def test_masks_differ_between_calls_and_repeat_after_manual_seed(dtype, rng):
    x = mc.tensor(positive(rng, dtype), device="cuda")

    def mask():
        return F.dropout(x, 0.5).numpy() != 0

    mc.manual_seed(1234)
    first, second = mask(), mask()
    mc.manual_seed(1234)
    assert not np.array_equal(first, second)
    assert np.array_equal(mask(), first) and np.array_equal(mask(), second)


def test_evaluation_and_p_zero_are_the_identity_and_p_one_zeros(dtype, rng):
    x = mc.tensor(positive(rng, dtype), requires_grad=True, device="cuda")
    assert F.dropout(x, 0.5, training=False) is x and F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    assert y.device == mc.device("cuda") and not y.numpy().any()
