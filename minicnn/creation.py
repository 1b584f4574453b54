"""Making tensors PyTorch's way: the dtype names and the factories `zeros`, `ones`, `full`, `rand`,
`randn`, `arange`, `zeros_like` and `ones_like`.

Every factory takes the shape as `zeros(2, 3)` or `zeros((2, 3))`, and `dtype`, `device` and
`requires_grad` by keyword. The floating-point default is float32, minicnn's and PyTorch's: half
the memory and bandwidth of float64 and precise enough to train with (gradcheck casts to float64
itself). `rand` and `randn` draw from the device's own generator (`Device.generator`), so
`mc.manual_seed(s)` makes them repeat, like every other draw minicnn makes.

The dtypes are NumPy's (`mc.float32 is numpy.float32`), so a tensor's `.dtype` compares equal to
them and every `dtype=` of the library takes them.
"""

from __future__ import annotations

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor

float32, float64, int64, uint8 = np.float32, np.float64, np.int64, np.uint8


def as_dtype(dtype, where: str) -> np.dtype:
    """`dtype` as a NumPy dtype, or a TypeError that names the function and lists what it takes."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"{where}: {dtype!r} is not a dtype minicnn knows: use mc.float32, mc.float64, mc.int64, "
            "mc.uint8 or a NumPy dtype"
        ) from None


def _size(where: str, size: tuple) -> tuple:
    """The shape from `f(2, 3)` or `f((2, 3))`, each entry a whole number >= 0."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 for n in size):
        raise ValueError(f"{where}: sizes must be whole numbers >= 0, as in {where}(2, 3) or {where}((2, 3)); got {size}")
    return tuple(int(n) for n in size)


def _float_dtype(where: str, dtype) -> np.dtype:
    dtype = np.dtype(np.float32) if dtype is None else as_dtype(dtype, where)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: draws float32 or float64 values, not {dtype}")
    return dtype


def _made(where: str, array, device, requires_grad: bool) -> Tensor:
    """`array` as a Tensor on `device`, refusing gradients for a tensor that cannot have them."""
    if requires_grad and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{where}: only floating-point tensors can require gradients, not {array.dtype}")
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


def zeros(*size, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of shape `size`, float32 unless `dtype` says otherwise."""
    dtype = float32 if dtype is None else as_dtype(dtype, "zeros")
    return _made("zeros", np.zeros(_size("zeros", size), dtype), device, requires_grad)


def ones(*size, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of ones of shape `size`, float32 unless `dtype` says otherwise."""
    dtype = float32 if dtype is None else as_dtype(dtype, "ones")
    return _made("ones", np.ones(_size("ones", size), dtype), device, requires_grad)


def full(size, fill_value, *, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of shape `size` (a tuple, or one int) filled with `fill_value`.

    Without `dtype` the value decides, as in PyTorch: a bool gives bool, an int int64, a float float32.
    """
    shape = _size("full", size if isinstance(size, (tuple, list)) else (size,))
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, (bool, np.bool_)) else (
            int64 if isinstance(fill_value, (int, np.integer)) else float32)
    return _made("full", np.full(shape, fill_value, as_dtype(dtype, "full")), device, requires_grad)


def rand(*size, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """Uniform values in [0, 1) of shape `size` from the device's generator; float32 or float64."""
    dtype, target = _float_dtype("rand", dtype), backend.device(device)
    values = target.generator.random(_size("rand", size), dtype=dtype)
    return _made("rand", values, target, requires_grad)


def randn(*size, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal values (mean 0, variance 1) of shape `size` from the device's generator."""
    dtype, target = _float_dtype("randn", dtype), backend.device(device)
    values = standard_normal(target.generator, _size("randn", size), dtype)
    return _made("randn", values, target, requires_grad)


def standard_normal(generator, shape: tuple, dtype):
    """Standard normal draws from a device's generator: NumPy's own sampler on the CPU; on a GPU,
    whose stream (`backend.CounterStream`) draws uniforms only, Box and Muller's transform of two
    uniforms u1, u2: sqrt(-2 ln u1) cos(2 pi u2), computed in float64, then cast."""
    if isinstance(generator, np.random.Generator):
        return generator.standard_normal(shape, dtype=dtype)
    u1 = 1.0 - generator.random(shape, dtype="float64")  # in (0, 1]: the log stays finite
    u2 = generator.random(shape, dtype="float64")
    xp = backend.get_array_module(u1)
    return (xp.sqrt(-2.0 * xp.log(u1)) * xp.cos(2.0 * np.pi * u2)).astype(dtype)


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """The values start, start + step, ... before `end`; `arange(n)` is 0..n-1.

    Without `dtype`: int64 when start, end and step are all integers (PyTorch's rule), else float32.
    The values are computed in float64 (or int64) and then cast, so float32 steps do not drift.
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: a step of {step} never goes from {start} to {end}: flip its sign")
    whole = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, end, step))
    dtype = (int64 if whole else float32) if dtype is None else as_dtype(dtype, "arange")
    values = np.arange(start, end, step, dtype=int64 if whole else float64).astype(dtype, copy=False)
    return _made("arange", values, device, requires_grad)


def _like(where: str, fill, like, dtype, device, requires_grad: bool) -> Tensor:
    array = like.data if isinstance(like, Tensor) else like
    dtype = array.dtype if dtype is None else as_dtype(dtype, where)
    target = backend.device_of(array) if device is None else device
    return _made(where, np.full(tuple(array.shape), fill, dtype), target, requires_grad)


def zeros_like(like, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape of `like` (a Tensor or array), and its dtype and device unless given."""
    return _like("zeros_like", 0, like, dtype, device, requires_grad)


def ones_like(like, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape of `like` (a Tensor or array), and its dtype and device unless given."""
    return _like("ones_like", 1, like, dtype, device, requires_grad)
