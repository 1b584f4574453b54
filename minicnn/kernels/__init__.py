"""Device kernels: array-level building blocks with no autograd, one module per device.

Every kernel module (`cpu` for NumPy arrays, `cuda` for CuPy arrays) offers the same functions,
each taking a `Window` (minicnn.kernels.window) for its geometry:

  empty(shape, dtype)                          an output buffer for kernels to fill (NaN when poisoned)
  conv_chunk_size(window, itemsize)            how many images a convolution takes at a time
  uses_direct_conv(window, groups, out_channels, dtype)
                                               whether direct_conv2d serves this layer better
  direct_conv2d(x, weight, bias, window, groups, activation) -> y
  DIRECT_BACKWARD                              whether direct_conv2d has its own backward:
  direct_conv2d_backward(g, x, weight, y, window, activation, needs_input_grad) -> (gx, gw, gb)
                                               (cpu; cuda's direct layers use the im2col backward)
  im2col(x, window) -> cols                    (N, C, H, W) -> (C*kH*kW, N*oH*oW)
  col2im(cols, window, out=None) -> dx         its adjoint
  conv_epilogue(cm, shape, bias, activation, out=None)
                                               (C_out, N*oH*oW) -> (N, C_out, oH, oW) + bias, activation
  add(a, b) -> a + b                           any shapes that broadcast; cpu: large ones on the C kernels
  has_c_kernels(dtype)                         whether the kernels below serve this dtype
                                               (cpu; elsewhere functional's array expressions):
  relu(x) -> y                                 relu_backward(g, y) -> gx
  batch_norm_stats(x) -> (mean, var)
  batch_norm_forward(x, mean, inv_std, weight, bias) -> y
  batch_norm_backward(g, x, mean, inv_std, scale, training, needs_input_grad) -> (gx, g_sum, g_dot)
  max_pool(x, window) -> (y, argmax)           max_pool_backward(g, argmax, window) -> dx
  avg_pool(x, window, count_include_pad)       avg_pool_backward(g, window, count_include_pad) -> dx

Dense products stay with the array module (BLAS through NumPy, cuBLAS through CuPy).
"""

from __future__ import annotations

import importlib

from minicnn.backend import device_of
from minicnn.kernels import cpu


def kernels_for(array):
    """The kernel module for the device `array` lives on (CUDA's is imported on first use)."""
    if device_of(array).type == "cpu":
        return cpu
    return importlib.import_module("minicnn.kernels.cuda")
