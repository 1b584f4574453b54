"""Cross-entropy and mean squared error on the GPU against the CPU, value and gradients."""

from __future__ import annotations

import pytest

import minicnn.functional as F
from minicnn.backend import gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]


@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["unit", "large_logits"])
@pytest.mark.parametrize("n, classes", [(6, 5), (1, 3), (64, 10)], ids=["6x5", "batch1", "64x10"])
def test_cross_entropy(n, classes, scale, dtype, rng, same_on_gpu):
    """The integer targets travel to the GPU as a tensor, as the training loop sends them."""
    inputs = [scale * rng.standard_normal((n, classes)), rng.integers(0, classes, size=n)]
    same_on_gpu(F.cross_entropy, inputs, dtype, rng, "sum")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, dtype, rng, same_on_gpu):
    inputs = [rng.standard_normal((3, 5, 7)), rng.standard_normal((3, 5, 7))]
    same_on_gpu(lambda a, b: F.mse_loss(a, b, reduction), inputs, dtype, rng, "sum")
