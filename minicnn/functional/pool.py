"""Pooling: summarise each window of a feature map by its maximum or its mean (docs/en/tutorial.md §7).

Windows are read through the same zero-copy view as convolution; output sizes, padding rules and
defaults (stride = kernel size, floor mode) are PyTorch's.
"""

from __future__ import annotations

import numpy as np

from minicnn.autograd import Function, Tensor
from minicnn.backend import get_array_module
from minicnn.functional.sizes import pair, pool_output_size
from minicnn.kernels import kernels_for
from minicnn.kernels.window import Window


class _WindowPool(Function):
    """Shared geometry for max and average pooling over (N, C, H, W) inputs."""

    def __init__(self, kernel, stride, padding, ceil_mode):
        self.kernel, self.stride, self.padding, self.ceil_mode = kernel, stride, padding, ceil_mode

    def _window(self, x) -> Window:
        """The pooling windows over x: (N, C, H, W), padded symmetrically; a ceil_mode window
        may overhang the bottom or right edge by more than the padding."""
        out, pads = [], []
        for size, k, s, p in zip(x.shape[2:], self.kernel, self.stride, self.padding):
            o = pool_output_size(size, k, s, p, self.ceil_mode)
            out.append(o)
            pads += [p, max(p, (o - 1) * s + k - size - p)]
        return Window.over(x.shape, self.kernel, self.stride, (1, 1), tuple(pads), tuple(out))


class MaxPool2d(_WindowPool):
    """Largest value in each window; the gradient goes to that value's position.

    x: (N, C, H, W) -> (N, C, oH, oW). Ties: the gradient goes to the FIRST maximum in the window
    in row-major order (top row first, then left to right), like PyTorch on the CPU; a NaN counts as
    the maximum. Padding is never chosen (on the CPU it is -inf; on the GPU it is skipped, which
    differs only for a window whose real cells are all -inf).
    """

    def forward(self, x):
        self.window = self._window(x)
        y, argmax = kernels_for(x).max_pool(x, self.window)
        self.save_for_backward(argmax)
        return y

    def backward(self, g):
        (argmax,) = self.saved
        return kernels_for(g).max_pool_backward(g, argmax, self.window)


class AvgPool2d(_WindowPool):
    """Mean of each window. x: (N, C, H, W) -> (N, C, oH, oW).

    count_include_pad=True divides by the window's cells inside the padded input (zeros counted);
    False divides by the cells inside the real input only. Cells of a ceil_mode window that hang
    past the padding are never counted.
    """

    def __init__(self, kernel, stride, padding, ceil_mode, count_include_pad):
        super().__init__(kernel, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        self.window = self._window(x)
        return kernels_for(x).avg_pool(x, self.window, self.count_include_pad)

    def backward(self, g):
        return kernels_for(g).avg_pool_backward(g, self.window, self.count_include_pad)


class AdaptiveAvgPool2d(Function):
    """Average into a fixed output grid whatever the input size.

    Output cell i along an axis of length L averages input positions floor(i*L/o) to
    ceil((i+1)*L/o) - 1 (PyTorch's bins). That is a linear map per axis, y = P_h @ x @ P_w^T with
    P the (o, L) averaging matrices, so one matrix K = (P_h kron P_w)^T, (H*W, oH*oW), maps every
    flattened (n, c) plane at once: y = x (N*C, H*W) @ K and gx = g (N*C, oH*oW) @ K^T, one BLAS
    product each way (global pooling: K is a column of 1/(H*W)).
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = get_array_module(x)
        n, c, h, w = x.shape
        rows, columns = _bin_matrix(h, self.output_size[0]), _bin_matrix(w, self.output_size[1])
        self.weights = xp.asarray(np.kron(rows, columns).T, dtype=x.dtype)
        self.input_shape = x.shape
        return (x.reshape(n * c, h * w) @ self.weights).reshape(n, c, *self.output_size)

    def backward(self, g):
        n, c = g.shape[:2]
        cells = g.reshape(n * c, -1)
        # one output cell (global pooling): g times a row, broadcast; BLAS takes far longer over one term
        gx = cells * self.weights.T if cells.shape[1] == 1 else cells @ self.weights.T
        return gx.reshape(self.input_shape)


def _bin_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) matrix whose row i averages adaptive bin i."""
    i = np.arange(out)
    starts, ends = (i * size) // out, -((-(i + 1) * size) // out)
    positions = np.arange(size)
    inside = (positions >= starts[:, None]) & (positions < ends[:, None])
    return inside / (ends - starts)[:, None]


def _pool_settings(name, x, kernel_size, stride, padding, ceil_mode):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be (N, C, H, W), got shape {tuple(x.shape)}")
    kernel = pair(kernel_size, f"{name} kernel_size")
    stride = kernel if stride is None else pair(stride, f"{name} stride")
    padding = pair(padding, f"{name} padding")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{name}: kernel {kernel} and stride {stride} must be positive, padding {padding} non-negative")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel {kernel}")
    for size, k, s, p in zip(x.shape[2:], kernel, stride, padding):
        if pool_output_size(size, k, s, p, ceil_mode) < 1:
            raise ValueError(
                f"{name}: kernel {kernel} is larger than the input {tuple(x.shape[2:])} padded by {padding}"
            )
    return kernel, stride, padding


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False) -> Tensor:
    """Max pooling. x: (N, C, H, W) -> (N, C, oH, oW), stride defaulting to kernel_size:
    2x2 with stride 2 halves each side. oH = floor((H + 2p - k) / s) + 1 (ceil with ceil_mode).
    The gradient of a window goes to its first maximum (row-major order)."""
    kernel, stride, padding = _pool_settings("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return MaxPool2d(kernel, stride, padding, ceil_mode)(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Average pooling. x: (N, C, H, W) -> (N, C, oH, oW); sizes as in max_pool2d."""
    kernel, stride, padding = _pool_settings("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad)(x)


def adaptive_avg_pool2d(x, output_size) -> Tensor:
    """Average pooling to a fixed (oH, oW) grid, whatever H and W; None keeps that side's size.
    x: (N, C, H, W) -> (N, C, oH, oW). (1, 1) is global average pooling (GoogLeNet, ResNet)."""
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: input must be (N, C, H, W), got shape {tuple(x.shape)}")
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    sizes = tuple(x.shape[2 + i] if s is None else int(s) for i, s in enumerate(sizes))
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size!r}")
    return AdaptiveAvgPool2d(sizes)(x)
