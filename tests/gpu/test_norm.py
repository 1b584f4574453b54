"""Batch normalisation (training and evaluation, with the running statistics it updates in place)
and local response normalisation on the GPU against the CPU, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn.functional as F
from minicnn.backend import gpu_available, to_device, to_numpy

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(8, 13), (2, 13, 7, 9), (1, 5, 13, 17)], ids=["2d", "4d", "4d_batch1"])
def test_batch_norm(shape, training, affine, dtype, rng, same_on_gpu, close_to_cpu):
    """Output and gradients, then the running statistics: updated the same way on both devices
    while training (momentum 0.1, unbiased variance), left exactly as they were in evaluation."""
    channels = shape[1]
    start = [rng.standard_normal(channels).astype(dtype), rng.uniform(0.5, 2.0, channels).astype(dtype)]
    on_cpu = [array.copy() for array in start]
    on_gpu = [to_device(array.copy(), "cuda") for array in start]

    def batch_norm(x, *affine_parameters):
        running = on_cpu if x.device.type == "cpu" else on_gpu
        return F.batch_norm(x, *running, *affine_parameters, training=training, momentum=0.1, eps=1e-5)

    inputs = [2.0 * rng.standard_normal(shape) + 0.5]
    if affine:
        inputs += [rng.standard_normal(channels), rng.standard_normal(channels)]
    same_on_gpu(batch_norm, inputs, dtype, rng, "sum")
    for name, gpu_value, cpu_value, before in zip(("running_mean", "running_var"), on_gpu, on_cpu, start):
        close_to_cpu(gpu_value, cpu_value, dtype, "sum", name)
        if not training:
            assert np.array_equal(cpu_value, before) and np.array_equal(to_numpy(gpu_value), before), name


@pytest.mark.parametrize(
    "size, alpha, beta, k",
    [(5, 1e-4, 0.75, 2.0), (4, 0.5, 0.75, 1.0), (9, 0.5, 0.75, 1.0)],
    ids=["alexnet_size5", "size4_even", "size9"],
)
def test_local_response_norm(size, alpha, beta, k, dtype, rng, same_on_gpu):
    same_on_gpu(lambda x: F.local_response_norm(x, size, alpha, beta, k), [rng.standard_normal((2, 13, 7, 9))],
                dtype, rng, "sum")
