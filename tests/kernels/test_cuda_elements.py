"""The CUDA kernels' index arithmetic, tested without a GPU.

Every kernel in minicnn/kernels/cuda/*.cu is a grid-stride loop around one `__host__ __device__`
element function. tests/kernels/cuda_harness.cpp compiles those same kernels for the CPU and runs
them (float64) as a launch of a small grid would, every thread going round its loop many times;
here each is compared with the reference kernels over NumPy (minicnn.kernels.reference), on awkward
geometries: odd sizes, 3 and 5 channels, 7x7 stride 2, dilation, groups, asymmetric padding,
ceil-mode overhangs, ties and NaNs.
"""

import numpy as np
import pytest

from minicnn.functional.pool import MaxPool2d
from minicnn.functional.sizes import conv_output_size
from minicnn.kernels import cuda, reference, sliding
from minicnn.kernels.window import Window

rng = np.random.default_rng(6)
NUMPY = reference.ReferenceBackend(np)


# (input shape, weight shape, stride, pads (top, bottom, left, right), dilation, groups)
CONV_CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((1, 5, 13, 17), (7, 5, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    ((2, 4, 10, 8), (6, 2, 3, 2), (2, 1), (0, 1, 2, 0), (2, 1), 2),
    ((3, 1, 28, 28), (6, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    ((2, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((1, 4, 6, 6), (4, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),
    ((2, 7, 5, 5), (3, 7, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((1, 2, 4, 5), (3, 2, 3, 2), (1, 1), (2, 2, 1, 1), (1, 1), 1),
    ((1, 3, 9, 11), (5, 3, 3, 3), (3, 2), (1, 2, 0, 1), (2, 3), 1),
]


def conv_window(shape, weight_shape, stride, pads, dilation) -> Window:
    kernel = weight_shape[2:]
    out = tuple(conv_output_size(shape[2 + i], kernel[i], stride[i], pads[2 * i] + pads[2 * i + 1], dilation[i])
                for i in range(2))
    return Window.over(shape, kernel, stride, dilation, pads, out)


@pytest.mark.parametrize("shape,weight_shape,stride,pads,dilation,groups", CONV_CASES)
def test_im2col_and_col2im_match_the_numpy_kernels(harness, shape, weight_shape, stride, pads, dilation, groups):
    window = conv_window(shape, weight_shape, stride, pads, dilation)
    x = rng.standard_normal(shape)
    cols = np.full((window.c * window.kh * window.kw, window.n * window.oh * window.ow), np.nan)
    harness("im2col", x, cols, np.int64(cols.size), window)
    np.testing.assert_array_equal(cols, NUMPY.im2col(x, window))

    g_cols = rng.standard_normal(cols.shape)
    dx = np.full(shape, np.nan)
    harness("col2im", g_cols, dx, np.int64(dx.size), window)
    np.testing.assert_allclose(dx, NUMPY.col2im(g_cols, window), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape,weight_shape,stride,pads,dilation,groups", CONV_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_direct_convolution_and_epilogue_match_im2col_and_blas(
    harness, shape, weight_shape, stride, pads, dilation, groups, with_bias, activation
):
    window = conv_window(shape, weight_shape, stride, pads, dilation)
    x, weight = rng.standard_normal(shape), rng.standard_normal(weight_shape)
    bias = rng.standard_normal(weight_shape[0]) if with_bias else None
    out_shape = (window.n, weight_shape[0], window.oh, window.ow)
    product = weight.reshape(groups, weight_shape[0] // groups, -1) @ NUMPY.im2col(x, window).reshape(groups, -1, window.n * window.oh * window.ow)
    expected = NUMPY.conv_epilogue(product, out_shape, bias, activation)
    code = cuda.ACTIVATIONS[activation]
    bias_arg = weight if bias is None else bias

    y = np.full(out_shape, np.nan)
    harness("direct_conv2d", x, weight, bias_arg, y, np.int64(y.size), bias is not None, code, weight_shape[0],
         groups, window)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)

    cm = np.ascontiguousarray(product.reshape(weight_shape[0], -1))
    y = np.full(out_shape, np.nan)
    harness("conv_epilogue", cm, bias_arg, y, np.int64(y.size), bias is not None, code, window.n, weight_shape[0],
         np.int64(window.oh * window.ow))
    np.testing.assert_array_equal(y, expected)


def test_relu_epilogue_keeps_nan_like_numpy(harness):
    cm = np.array([[np.nan, -1.0, 2.0, -0.0]])
    y = np.full((4, 1, 1, 1), 7.0)
    harness("conv_epilogue", cm, cm, y, np.int64(4), 0, cuda.ACTIVATIONS["relu"], 4, 1, np.int64(1))
    np.testing.assert_array_equal(y.ravel(), NUMPY.conv_epilogue(cm, (4, 1, 1, 1), None, "relu").ravel())


# (input shape, kernel, stride, padding, ceil_mode)
POOL_CASES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False),
    ((1, 5, 13, 11), (3, 3), (2, 2), (1, 1), True),
    ((2, 2, 7, 9), (3, 3), (1, 1), (1, 1), False),
    ((1, 3, 10, 7), (3, 2), (2, 1), (1, 0), True),
    ((1, 1, 11, 13), (5, 5), (3, 3), (2, 2), True),
    ((3, 2, 5, 5), (5, 5), (1, 1), (0, 0), False),
]


def pool_window(x, kernel, stride, padding, ceil_mode) -> Window:
    """The geometry exactly as minicnn.functional.pool computes it."""
    return MaxPool2d(kernel, stride, padding, ceil_mode)._window(x)


def pool_input(shape, ties: bool):
    """Random values, or small integers so that windows hold tied maxima."""
    return rng.integers(-2, 3, size=shape).astype(np.float64) if ties else rng.standard_normal(shape)


@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode", POOL_CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_forward_and_backward_match_the_numpy_kernels(harness, shape, kernel, stride, padding, ceil_mode, ties):
    x = pool_input(shape, ties)
    window = pool_window(x, kernel, stride, padding, ceil_mode)
    expected_y, expected_argmax = NUMPY.max_pool(x, window)
    y, argmax = np.full(expected_y.shape, np.nan), np.full(expected_y.shape, -99, dtype=np.int32)
    harness("max_pool", x, y, argmax, np.int64(y.size), window)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)

    g = rng.standard_normal(y.shape)
    dx = np.full(shape, np.nan)
    harness("max_pool_backward", g, argmax, dx, np.int64(dx.size), window)
    np.testing.assert_allclose(dx, NUMPY.max_pool_backward(g, expected_argmax, window), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dilation", [(2, 2), (3, 2)])
def test_max_pool_reads_and_scatters_to_dilated_cells_like_pytorch(harness, dilation):
    """A window's cells are dilation apart in the forward pass as in the backward one (PyTorch's
    max_pool2d(dilation=d)); F.max_pool2d has no dilation yet, but the kernels take any Window."""
    x = rng.permutation(2 * 3 * 13 * 12).reshape(2, 3, 13, 12).astype(np.float64)  # one maximum per window
    kernel, stride, pad = (3, 2), (2, 1), 1
    out = [(size + 2 * pad - d * (k - 1) - 1) // s + 1 for size, k, s, d in zip(x.shape[2:], kernel, stride, dilation)]
    window = Window.over(x.shape, kernel, stride, dilation, (pad,) * 4, out)
    cells = sliding.windows(sliding.pad2d(x, window.pads, -np.inf), kernel, stride, dilation, out)
    flat = cells.reshape(cells.shape[:4] + (-1,))
    expected_y, expected_argmax = flat.max(axis=-1), flat.argmax(axis=-1)
    y, argmax = np.full(expected_y.shape, np.nan), np.full(expected_y.shape, -99, dtype=np.int32)
    harness("max_pool", x, y, argmax, np.int64(y.size), window)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)

    g = rng.standard_normal(y.shape)
    expected_dx = np.zeros(sliding.pad2d(x, window.pads).shape)
    n, c, i, j = np.indices(y.shape)
    a, b = np.divmod(expected_argmax, kernel[1])
    np.add.at(expected_dx, (n, c, i * stride[0] + a * dilation[0], j * stride[1] + b * dilation[1]), g)
    dx = np.full(x.shape, np.nan)
    harness("max_pool_backward", g, argmax, dx, np.int64(dx.size), window)
    np.testing.assert_allclose(dx, sliding.unpad2d(expected_dx, window.pads), rtol=1e-13, atol=1e-13)

    torch = pytest.importorskip("torch")
    pooled = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, pad, dilation)
    np.testing.assert_array_equal(y, pooled.numpy())


def test_max_pool_takes_the_first_nan_like_numpy(harness):
    x = rng.standard_normal((2, 3, 9, 9))
    x.ravel()[rng.choice(x.size, 20, replace=False)] = np.nan
    window = pool_window(x, (3, 3), (2, 2), (1, 1), True)
    expected_y, expected_argmax = NUMPY.max_pool(x, window)
    y, argmax = np.zeros(expected_y.shape), np.zeros(expected_y.shape, dtype=np.int32)
    harness("max_pool", x, y, argmax, np.int64(y.size), window)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)


@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_forward_and_backward_match_the_numpy_kernels(
    harness, shape, kernel, stride, padding, ceil_mode, count_include_pad
):
    x = rng.standard_normal(shape)
    window = pool_window(x, kernel, stride, padding, ceil_mode)
    expected = NUMPY.avg_pool(x, window, count_include_pad)
    y = np.full(expected.shape, np.nan)
    harness("avg_pool", x, y, np.int64(y.size), count_include_pad, window)
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)

    g = rng.standard_normal(y.shape)
    dx = np.full(shape, np.nan)
    harness("avg_pool_backward", g, dx, np.int64(dx.size), count_include_pad, window)
    np.testing.assert_allclose(dx, NUMPY.avg_pool_backward(g, window, count_include_pad), rtol=1e-13, atol=1e-13)
