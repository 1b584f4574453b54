"""Device kernels: array-level building blocks with no autograd, one backend object per device.

The interface is the public methods of `ReferenceBackend` (minicnn.kernels.reference), each with
its shapes: convolution (`conv2d`, `conv2d_backward` and their steps `im2col`, `col2im`,
`conv_epilogue`, `conv_chunk_size`), pooling (`max_pool`, `avg_pool` and their backwards), `relu`,
batch norm, `add`, SGD's `momentum_step` and `empty`. The reference writes every one of them over
an array module; `CpuBackend` (cpu.py, our C kernels through native.py) and `CudaBackend` (cuda.py,
our CUDA kernels) override the ones their own code does better. Each Device hands out its backend
(`Device.kernels`), and an op calls its methods unconditionally: a backend decides inside a method
whether its own kernel takes the case. Dense products stay with the array module (BLAS through
NumPy, cuBLAS through CuPy).
"""

from __future__ import annotations

from minicnn.backend import device_of


def kernels_for(array):
    """The kernel backend of the device `array` lives on (CUDA's is imported on first use)."""
    return device_of(array).kernels
