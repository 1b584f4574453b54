"""The CPU's kernel backend: the reference kernels over NumPy, with our C kernels where they serve.

Where the machine's C compiler builds the C kernels (minicnn.kernels.native), convolution (stride
1, and strided layers whose output channels fill the C code's vectors, forward and backward), max
pooling, batch norm, ReLU, large additions and SGD's momentum step run there. Each method decides
for itself whether its C kernel takes the case (built for this dtype, one the kernel handles) and
otherwise runs the reference kernel it overrides, which computes the same values: every case on a
machine without a compiler, or with MINICNN_NATIVE=0.

Making the backend makes the process-wide CPU settings (minicnn.kernels.settings), before the
first CPU op runs.
"""

from __future__ import annotations

import numpy as np

from minicnn.kernels import native, settings
from minicnn.kernels.reference import ReferenceBackend, argmax_dtype, inverse_std
from minicnn.kernels.window import Window

# Below this many values NumPy's own addition is as fast as a call into the C kernels.
C_ADD_MIN_SIZE = 1 << 16


class CpuBackend(ReferenceBackend):
    """The reference kernels over NumPy, overridden by the C kernels where they take the case."""

    def __init__(self):
        super().__init__(np)
        settings.configure()

    def conv2d(self, x, weight, bias, window: Window, groups: int, activation: str | None):
        """The C convolution, without an im2col matrix, in x's dtype, where it takes the layer
        (`_direct`); else im2col and BLAS."""
        if not _direct(window, groups, weight.shape[0], x.dtype):
            return super().conv2d(x, weight, bias, window, groups, activation)
        x, weight, bias = _contiguous_as(x.dtype, x, weight, bias)
        return native.conv_forward(x, weight, bias, window, relu=activation == "relu")

    def conv2d_backward(self, g, x, weight, y, window: Window, groups: int, activation: str | None,
                        needs_input_grad: tuple):
        """The C convolution's input and weight gradients in g's dtype (the one the forward pass
        ran in), where it takes the layer; a fused ReLU's mask (y > 0) is applied as the kernels
        read g. Else im2col and BLAS."""
        if not _direct(window, groups, weight.shape[0], g.dtype):
            return super().conv2d_backward(g, x, weight, y, window, groups, activation, needs_input_grad)
        g, weight, x = _contiguous_as(g.dtype, g, weight, x)
        mask = None if activation is None else np.ascontiguousarray(y, dtype=g.dtype)
        needs_bias = len(needs_input_grad) > 2 and needs_input_grad[2]
        gx = gw = gb = None
        if needs_input_grad[0]:
            gx = native.conv_input_grad(g, weight, window, mask)
        if needs_input_grad[1]:
            gw, gb = native.conv_weight_grad(x, g, window, needs_bias, mask)
        elif needs_bias:
            gb = (g if mask is None else np.where(mask > 0, g, 0)).sum(axis=(0, 2, 3))
        return gx, gw, gb

    def max_pool(self, x, window: Window):
        """The C kernel walks each window once, with the reference's rule for the argmax (uint8)."""
        if not _native_pool(window, x.dtype):
            return super().max_pool(x, window)
        return native.max_pool(np.ascontiguousarray(x), window)

    def max_pool_backward(self, g, argmax, window: Window):
        """The C kernel, for a uint8 argmax."""
        if not _native_pool(window, g.dtype):
            return super().max_pool_backward(g, argmax, window)
        return native.max_pool_backward(np.ascontiguousarray(g), np.ascontiguousarray(argmax, dtype=np.uint8), window)

    def add(self, a, b):
        """On two threads in the C kernels for large arrays of one shape and float dtype (residual
        connections, gradients meeting at one input), else NumPy's (any broadcast)."""
        if a.shape == b.shape and a.dtype == b.dtype and a.size >= C_ADD_MIN_SIZE \
                and native.library(a.dtype) is not None:
            return native.add(np.ascontiguousarray(a), np.ascontiguousarray(b))
        return a + b

    def relu(self, x):
        """One C pass."""
        if native.library(x.dtype) is None:
            return super().relu(x)
        return native.relu_forward(np.ascontiguousarray(x)).reshape(x.shape)  # a 0-d array comes back 0-d

    def relu_backward(self, g, y):
        """One C pass, for g and y of one dtype."""
        if g.dtype != y.dtype or native.library(g.dtype) is None:
            return super().relu_backward(g, y)
        return native.relu_backward(np.ascontiguousarray(g), np.ascontiguousarray(y)).reshape(g.shape)

    def momentum_step(self, param, grad, buffer, lr: float, momentum: float, dampening: float,
                      nesterov: bool = False) -> None:
        """One C pass over buffer and parameter, for three C-contiguous arrays of one dtype and shape
        (not Nesterov's step)."""
        same = param.dtype == grad.dtype == buffer.dtype and param.shape == grad.shape == buffer.shape
        if nesterov or not (same and param.flags.c_contiguous and grad.flags.c_contiguous
                            and native.library(param.dtype) is not None):
            return super().momentum_step(param, grad, buffer, lr, momentum, dampening, nesterov)
        native.momentum_step(param, grad, buffer, lr, momentum, dampening)

    def batch_norm_forward(self, x, weight, bias, eps: float, stats: tuple | None = None):
        """The C kernels: one pass for the statistics, one that writes y. x_hat is not kept: saved
        holds x and mean, and batch_norm_backward recomputes x_hat from them as it reads x."""
        if native.library(x.dtype) is None:
            return super().batch_norm_forward(x, weight, bias, eps, stats)
        mean, var = native.batch_norm_stats(np.ascontiguousarray(x)) if stats is None else stats
        inv_std = inverse_std(np, var, eps, x.dtype)
        y = native.batch_norm_forward(*_contiguous_as(x.dtype, x, mean, inv_std, weight, bias))
        return y, (mean, var), (x, mean, inv_std, weight)

    def batch_norm_backward(self, g, x, mean, inv_std, weight, training: bool, needs_input_grad: bool):
        """Two C passes: one for both sums, one for gx, each recomputing x_hat from x (saved by the C
        forward pass: mean is not None)."""
        if mean is None or native.library(x.dtype) is None:
            return super().batch_norm_backward(g, x, mean, inv_std, weight, training, needs_input_grad)
        scale = inv_std if weight is None else inv_std * weight
        g, x, mean, inv_std, scale = _contiguous_as(x.dtype, g, x, mean, inv_std, scale)
        sums = native.batch_norm_sums(g, x, mean, inv_std)
        if not needs_input_grad:
            return (None, *sums)
        return (native.batch_norm_input_grad(g, x, mean, inv_std, scale, sums if training else None), *sums)


def _direct(window: Window, groups: int, out_channels: int, dtype) -> bool:
    """Whether the C convolution takes a layer: every stride-1, undilated, ungrouped float32/float64
    one (all of LeNet's and ResNet's 3x3 layers), and strided ones whose output channels fill the C
    code's vectors (ResNet's downsampling layers)."""
    if groups != 1 or window.dilation != (1, 1) or window.n == 0 or native.library(dtype) is None:
        return False
    return window.stride == (1, 1) or native.takes_stride(out_channels, window.kw, dtype)


def _native_pool(window: Window, dtype) -> bool:
    """Whether the C max pooling takes this window: its argmax is a uint8 offset, as the reference's."""
    return argmax_dtype(window) == np.uint8 and native.library(dtype) is not None


def _contiguous_as(dtype, *arrays):
    """Each array C-contiguous in `dtype` (None stays None): what the C kernels read."""
    return tuple(None if a is None else np.ascontiguousarray(a, dtype=dtype) for a in arrays)
