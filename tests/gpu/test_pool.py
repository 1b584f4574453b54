"""Max, average and adaptive average pooling on the GPU against the CPU, forward and backward.

Max pooling is compared on distinct values (one maximum per window) and on small integers, where
ties are everywhere: the gradient must go to the FIRST maximum in row-major order on both devices,
and padding (-inf) must never win, even over all-negative windows. Strides larger than the kernel
leave pixels in no window, whose gradient must be exactly zero (the poisoned buffers show any
pixel a kernel misses). Tensors larger than one full grid of the kernels send every thread round
its grid-stride loop, forward and backward.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import minicnn.functional as F
from minicnn.backend import gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]

CASES = {
    # id: (input shape, kernel_size, stride, padding, ceil_mode)
    "k2_s2": ((2, 3, 8, 8), 2, 2, 0, False),
    "k2_odd_non_square_batch1": ((1, 5, 13, 17), 2, None, 0, False),
    "lenet": ((2, 6, 28, 28), 2, None, 0, False),
    "k3_s2": ((2, 7, 13, 17), 3, 2, 0, False),
    "k3_s2_p1": ((2, 13, 14, 15), 3, 2, 1, False),
    "k3_s1_p1": ((1, 3, 13, 17), 3, 1, 1, False),
    "k3_s2_ceil": ((2, 5, 13, 16), 3, 2, 0, True),
    "k3_s2_p1_ceil": ((2, 3, 8, 9), 3, 2, 1, True),
    "k3_s3_p1_ceil_drops_last": ((2, 3, 5, 5), 3, 3, 1, True),
    "k2_s3_skips_pixels": ((2, 3, 8, 7), 2, 3, 0, False),
    "k3x2_s2x1_p1x0": ((2, 5, 9, 8), (3, 2), (2, 1), (1, 0), False),
    "alexnet_k3_s2": ((2, 33, 27, 27), 3, 2, 0, False),
}


def settings(kernel, stride, padding, ceil_mode) -> dict:
    return dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", CASES.values(), ids=CASES.keys())
def test_max_pool2d(shape, kernel, stride, padding, ceil_mode, dtype, rng, distinct_values, same_on_gpu):
    kwargs = settings(kernel, stride, padding, ceil_mode)
    same_on_gpu(lambda x: F.max_pool2d(x, **kwargs), [distinct_values(shape)], dtype, rng)


TIE_CASES = {name: CASES[name] for name in ("k2_s2", "k3_s2_p1", "k3_s1_p1", "k3_s2_ceil")}


@pytest.mark.parametrize("low, high", [(0, 3), (-3, 0)], ids=["0_to_2", "all_negative"])
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", TIE_CASES.values(), ids=TIE_CASES.keys())
def test_max_pool2d_ties_go_to_the_first_maximum(shape, kernel, stride, padding, ceil_mode, low, high, dtype, rng,
                                                 same_on_gpu):
    kwargs = settings(kernel, stride, padding, ceil_mode)
    x = rng.integers(low, high, size=shape).astype(np.float64)
    same_on_gpu(lambda x: F.max_pool2d(x, **kwargs), [x], dtype, rng)


def test_max_pool2d_nan_counts_as_the_maximum(dtype, rng, same_on_gpu):
    """As documented for MaxPool2d: a window holding a NaN gives NaN, and its gradient goes there."""
    x = rng.standard_normal((2, 3, 9, 8))
    x.reshape(-1)[rng.choice(x.size, 5, replace=False)] = np.nan
    out = same_on_gpu(lambda x: F.max_pool2d(x, 3, 2, 1), [x], dtype, rng)
    assert np.isnan(out.numpy()).any()


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["count_pad", "exclude_pad"])
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", CASES.values(), ids=CASES.keys())
def test_avg_pool2d(shape, kernel, stride, padding, ceil_mode, count_include_pad, dtype, rng, same_on_gpu):
    kwargs = dict(settings(kernel, stride, padding, ceil_mode), count_include_pad=count_include_pad)
    same_on_gpu(lambda x: F.avg_pool2d(x, **kwargs), [rng.standard_normal(shape)], dtype, rng, "sum")


@pytest.mark.parametrize(
    "shape, output_size",
    [((2, 7, 13, 17), 1), ((2, 7, 13, 17), (3, 4)), ((1, 5, 11, 13), (None, 5)), ((2, 3, 5, 4), (7, 9))],
    ids=["global", "uneven", "none_keeps_height", "upsample"],
)
def test_adaptive_avg_pool2d(shape, output_size, dtype, rng, same_on_gpu):
    same_on_gpu(lambda x: F.adaptive_avg_pool2d(x, output_size), [rng.standard_normal(shape)], dtype, rng, "sum")


def past_one_grid_shape(channels: int = 4, side: int = 128) -> tuple:
    """(N, channels, side, side) with more elements than one full grid of the CUDA kernels on this
    GPU (blocks capped at 32 per multiprocessor, of BLOCK_SIZE threads: 1,081,344 elements on an
    H100 or H200); pooled 3x3 with stride 1 and padding 1 the output is as large."""
    cuda = importlib.import_module("minicnn.kernels.cuda")
    return (cuda._max_blocks(0) * cuda.BLOCK_SIZE // (channels * side * side) + 1, channels, side, side)


def test_pooling_past_one_grid(dtype, rng, distinct_values, same_on_gpu):
    shape = past_one_grid_shape()
    same_on_gpu(lambda x: F.max_pool2d(x, 3, 1, 1), [distinct_values(shape)], dtype, rng)
    same_on_gpu(lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), [rng.standard_normal(shape)], dtype, rng,
                "sum")


# Small enough for compute-sanitizer memcheck (the device script selects these by name), with a
# ceil-mode window hanging past the padding: float32 only.

def test_sanitizer_max_pool2d(rng, distinct_values, same_on_gpu):
    same_on_gpu(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [distinct_values((1, 3, 8, 7))], np.float32, rng)


def test_sanitizer_avg_pool2d(rng, same_on_gpu):
    same_on_gpu(lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                [rng.standard_normal((1, 3, 8, 7))], np.float32, rng, "sum")


def test_sanitizer_pooling_past_one_grid(rng, distinct_values, same_on_gpu):
    """Max and average pooling forward and backward, each just past one full grid, under memcheck."""
    shape = past_one_grid_shape()
    same_on_gpu(lambda x: F.max_pool2d(x, 3, 1, 1), [distinct_values(shape)], np.float32, rng)
    same_on_gpu(lambda x: F.avg_pool2d(x, 3, 1, 1), [rng.standard_normal(shape)], np.float32, rng, "sum")
