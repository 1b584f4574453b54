"""ReLU, sigmoid, tanh, softmax and log-softmax on the GPU against the CPU, forward and backward,
on ordinary and saturating inputs (sigmoid and tanh flat, softmax logits 100 apart)."""

from __future__ import annotations

import pytest

import minicnn.functional as F
from minicnn.backend import gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["unit", "saturating"])
@pytest.mark.parametrize("op", [F.relu, F.sigmoid, F.tanh], ids=["relu", "sigmoid", "tanh"])
def test_elementwise_activation(op, scale, dtype, rng, same_on_gpu):
    same_on_gpu(op, [scale * rng.standard_normal((2, 7, 13, 17))], dtype, rng)


@pytest.mark.parametrize("scale", [1.0, 100.0], ids=["unit", "large_logits"])
@pytest.mark.parametrize("dim", [1, -1], ids=["dim1", "last"])
@pytest.mark.parametrize("op", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_family(op, dim, scale, dtype, rng, same_on_gpu):
    same_on_gpu(lambda x: op(x, dim=dim), [scale * rng.standard_normal((5, 33, 7))], dtype, rng)
