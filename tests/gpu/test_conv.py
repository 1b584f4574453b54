"""conv2d on the GPU against the CPU, forward and both backward passes; also the fused bias+ReLU
epilogue and the textbook convolve/correlate, which run on the same op.

The shapes reach every path and edge of the CUDA kernels: 1 to 4 input channels per group (the
direct convolution that LeNet-like layers may take) and more (im2col, cuBLAS, col2im), channel
counts that are no multiple of any tile, batch 1, non-square images, strides that skip pixels
(their gradient must be exactly zero: the poisoned buffers show any pixel col2im misses), dilation,
groups, and every kind of padding; an empty batch; tensors larger than one full grid of the
kernels, so that every thread goes round its grid-stride loop; and batches taken in slices.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

import minicnn.functional as F
from minicnn.backend import gpu_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]

CASES = {
    # id: (x shape, weight shape, bias?, keyword arguments of conv2d)
    "lenet_c1": ((2, 1, 28, 28), (6, 1, 5, 5), True, dict(padding=2)),
    "lenet_c3": ((2, 6, 14, 14), (16, 6, 5, 5), True, {}),
    "cin1_batch1_no_bias": ((1, 1, 7, 9), (3, 1, 3, 3), False, {}),
    "cin2_odd_sizes": ((1, 2, 13, 17), (5, 2, 3, 3), True, dict(padding=1)),
    "cin3_7x7_s2_p3": ((2, 3, 29, 31), (7, 3, 7, 7), True, dict(stride=2, padding=3)),
    "cin3_same_even_kernel": ((1, 3, 13, 17), (5, 3, 4, 3), True, dict(padding="same")),
    "cin3_full": ((2, 3, 9, 11), (7, 3, 3, 2), True, dict(padding="full")),
    "cin3_kernel_covers_input": ((2, 3, 5, 4), (4, 3, 5, 4), True, {}),
    "cin4_dilation2": ((2, 4, 15, 13), (13, 4, 3, 3), True, dict(dilation=2, padding=2)),
    "cin2_k2_s3_skips_pixels": ((2, 2, 10, 11), (3, 2, 2, 2), True, dict(stride=3)),
    "cin5_1x1": ((2, 5, 13, 17), (33, 5, 1, 1), True, {}),
    "cin7_1x1_s2_skips_pixels": ((2, 7, 9, 11), (5, 7, 1, 1), False, dict(stride=2)),
    "cin7_s2_p1": ((2, 7, 17, 13), (13, 7, 3, 3), True, dict(stride=2, padding=1)),
    "cin13_batch1": ((1, 13, 9, 11), (33, 13, 3, 3), True, dict(padding=1)),
    "cin33_stride_and_pad_pairs": ((2, 33, 11, 9), (7, 33, 3, 3), True, dict(stride=(2, 1), padding=(1, 2))),
    "cin5_same_dilation_pair": ((2, 5, 9, 10), (7, 5, 3, 2), True, dict(padding="same", dilation=(2, 3))),
    "cin16_resnet_stage": ((2, 16, 32, 32), (16, 16, 3, 3), False, dict(padding=1)),
    "groups2_3_per_group": ((2, 6, 11, 13), (10, 3, 3, 3), True, dict(groups=2, padding=1)),
    "groups2_7_per_group": ((2, 14, 11, 13), (10, 7, 3, 3), True, dict(groups=2, padding=1)),
    "depthwise": ((2, 13, 11, 9), (13, 1, 3, 3), True, dict(groups=13, padding=1)),
    "depthwise_x2_s2_d2": ((1, 5, 13, 17), (10, 1, 3, 3), False, dict(groups=5, stride=2, dilation=2)),
    "cin6_empty_batch": ((0, 6, 9, 9), (4, 6, 3, 3), True, dict(padding=1)),
}


def conv_inputs(rng, x_shape, w_shape, with_bias):
    inputs = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    return inputs + [rng.standard_normal(w_shape[0])] if with_bias else inputs


@pytest.mark.parametrize("x_shape, w_shape, with_bias, kwargs", CASES.values(), ids=CASES.keys())
def test_conv2d(x_shape, w_shape, with_bias, kwargs, dtype, rng, same_on_gpu):
    same_on_gpu(lambda *a: F.conv2d(*a, **kwargs), conv_inputs(rng, x_shape, w_shape, with_bias), dtype, rng, "sum")


@pytest.mark.parametrize("mode", ["full", "valid", "same"])
@pytest.mark.parametrize(
    "op, x_shape, k_shape", [(F.convolve, (13, 17), (4, 3)), (F.correlate, (13,), (4,))],
    ids=["convolve_2d", "correlate_1d"],
)
def test_textbook_convolution(op, x_shape, k_shape, mode, dtype, rng, same_on_gpu):
    inputs = [rng.standard_normal(x_shape), rng.standard_normal(k_shape)]
    same_on_gpu(lambda x, k: op(x, k, mode), inputs, dtype, rng, "sum")


def has_activation_parameter() -> bool:
    return "activation" in inspect.signature(F.conv2d).parameters


def on_grid(rng, shape, step):
    """Random multiples of `step` in [-1, 1]: products and sums of them are exact in float32, so the
    convolution before the ReLU is the same on both devices whatever the order of summation, and
    the ReLU keeps the same elements on both."""
    steps = round(1 / step)
    return rng.integers(-steps, steps + 1, size=shape) * step


FUSED_CASES = ["lenet_c1", "cin2_odd_sizes", "cin1_batch1_no_bias", "cin7_s2_p1", "cin33_stride_and_pad_pairs",
               "groups2_7_per_group", "depthwise"]


@pytest.mark.parametrize("case", FUSED_CASES)
def test_conv2d_fused_bias_relu(case, dtype, rng, same_on_gpu):
    """F.conv2d(..., activation="relu") on the GPU (the fused epilogue) equals relu(conv2d(...)) on
    the CPU, output and gradients. Inputs are on a grid of quarters and the bias an odd multiple of
    1/32, so no output sits at zero; without a bias some are exactly zero, where both must pass no
    gradient (ReLU's derivative at 0 is taken as 0, as in PyTorch)."""
    if not has_activation_parameter():
        pytest.skip("F.conv2d has no activation parameter yet (the fused bias+ReLU epilogue)")
    x_shape, w_shape, with_bias, kwargs = CASES[case]
    settings = [kwargs.get(name, default) for name, default in
                (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))]
    inputs = [on_grid(rng, x_shape, 0.25), on_grid(rng, w_shape, 0.25)]
    if with_bias:
        inputs.append(on_grid(rng, w_shape[0], 1 / 16) + 1 / 32)

    def fused(x, w, b=None):
        return F.conv2d(x, w, b, *settings, activation="relu")

    def unfused(x, w, b=None):
        return F.relu(F.conv2d(x, w, b, *settings))

    same_on_gpu(fused, inputs, dtype, rng, "sum", reference=unfused)


def images_past_one_grid(image_size: int) -> int:
    """How many images of `image_size` elements exceed one full grid of the CUDA kernels on this
    GPU (blocks capped at 32 per multiprocessor, of BLOCK_SIZE threads: 1,081,344 elements on an
    H100 or H200), so every thread goes round its grid-stride loop at least twice."""
    cuda = importlib.import_module("minicnn.kernels.cuda")
    return cuda._max_blocks(0) * cuda.BLOCK_SIZE // image_size + 1


# (channels in, channels out): 8 -> 8 takes im2col, cuBLAS and the epilogue forward and col2im
# backward; 3 -> 8 the direct convolution forward. Every kernel's output exceeds one grid.
PAST_ONE_GRID = {"im2col": (8, 8), "direct": (3, 8)}


@pytest.mark.parametrize("channels", PAST_ONE_GRID.values(), ids=PAST_ONE_GRID.keys())
def test_conv2d_past_one_grid(channels, dtype, rng, same_on_gpu):
    c_in, c_out = channels
    x_shape = (images_past_one_grid(c_in * 128 * 128), c_in, 128, 128)
    inputs = [rng.standard_normal(x_shape), rng.standard_normal((c_out, c_in, 3, 3)), rng.standard_normal(c_out)]
    same_on_gpu(lambda x, w, b: F.conv2d(x, w, b, padding=1), inputs, dtype, rng, "sum")


@pytest.mark.parametrize("case", ["cin16_resnet_stage", "groups2_7_per_group", "cin33_stride_and_pad_pairs"])
def test_conv2d_in_one_image_slices(case, monkeypatch, dtype, rng, same_on_gpu):
    """With room for one image's im2col matrix only, forward and both gradients go slice by slice
    (the input gradient folded into its own images of gx) and still equal the CPU's."""
    cuda = importlib.import_module("minicnn.kernels.cuda")
    monkeypatch.setattr(cuda, "CONV_CHUNK_MAX_BYTES", 1)
    x_shape, w_shape, with_bias, kwargs = CASES[case]
    same_on_gpu(lambda *a: F.conv2d(*a, **kwargs), conv_inputs(rng, x_shape, w_shape, with_bias), dtype, rng, "sum")


# Small enough for compute-sanitizer memcheck (the device script selects these by name), yet with
# windows at every edge: float32 only.

def test_sanitizer_conv2d(rng, same_on_gpu):
    """The direct kernel (2 input channels) and im2col/col2im (6), forward and backward."""
    inputs = [rng.standard_normal((1, 2, 7, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)]
    same_on_gpu(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), inputs, np.float32, rng, "sum")
    inputs = [rng.standard_normal((2, 6, 6, 5)), rng.standard_normal((4, 6, 3, 2)), rng.standard_normal(4)]
    same_on_gpu(lambda x, w, b: F.conv2d(x, w, b, padding=(2, 1), dilation=2), inputs, np.float32, rng, "sum")


def test_sanitizer_conv2d_bias_relu(rng, same_on_gpu):
    if not has_activation_parameter():
        pytest.skip("F.conv2d has no activation parameter yet (the fused bias+ReLU epilogue)")
    inputs = [on_grid(rng, (1, 5, 6, 5), 0.25), on_grid(rng, (4, 5, 3, 3), 0.25), on_grid(rng, 4, 1 / 16) + 1 / 32]
    same_on_gpu(lambda x, w, b: F.conv2d(x, w, b, 1, 1, 1, 1, activation="relu"), inputs, np.float32, rng, "sum",
                reference=lambda x, w, b: F.relu(F.conv2d(x, w, b, 1, 1)))


def test_sanitizer_conv2d_past_one_grid(rng, same_on_gpu):
    """im2col, the epilogue and col2im each just past one full grid: every thread's second trip
    round its loop, at the tensors' far ends, under memcheck."""
    x_shape = (images_past_one_grid(8 * 128 * 128), 8, 128, 128)
    inputs = [rng.standard_normal(x_shape), rng.standard_normal((8, 8, 3, 3)), rng.standard_normal(8)]
    same_on_gpu(lambda x, w, b: F.conv2d(x, w, b, padding=1), inputs, np.float32, rng, "sum")
