"""Array-level kernels for CuPy arrays: our own CUDA C++ (cuda/*.cu), loaded with cupy.RawModule.

Each source is compiled by NVRTC the first time a kernel of it runs on a device, then kept for
the process (and by CuPy's on-disk cache across processes). Local `#include "x.cuh"` lines are
expanded here before compiling (each header once, so `#pragma once` is dropped), so the source
CuPy hashes for its cache is everything NVRTC sees.

Launches follow four rules: each wrapper allocates, copies, resolves its kernel and launches on
its input's GPU (CuPy would use the current one, which for a `cuda:N` array need not be N); inputs
are made C-contiguous first; scalars go as NumPy int32/int64 (CuPy would pass a Python int as a
64-bit long and a float as a double); every kernel walks its output with a 64-bit grid-stride loop,
so a capped grid covers any size. Dense products are not here: they are cuBLAS's, through CuPy's
matmul, in minicnn.functional.
"""

from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path

import numpy as np

from minicnn.backend import cupy_module
from minicnn.kernels.window import Window

SOURCE_DIR = Path(__file__).with_name("cuda")
# Each source and the templated kernels it defines, instantiated for every dtype in TYPE_NAMES.
KERNELS = {
    "conv.cu": ("im2col", "col2im", "conv_epilogue", "direct_conv2d"),
    "pool.cu": ("max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward"),
}
TYPE_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
COMPILE_OPTIONS = ("--std=c++17",)
ACTIVATIONS = {None: 0, "relu": 1}
BLOCK_SIZE = 256
BLOCKS_PER_MULTIPROCESSOR = 32
# Direct convolution, without an im2col matrix, when each output sums at most this many products
# (C_in/groups * kH * kW): LeNet's 1-channel 5x5 first layer, RGB 3x3 and depthwise layers.
DIRECT_CONV_MAX_TAPS = 32
# A convolution's slice of the batch keeps its im2col matrix within 1/CONV_CHUNK_SHARE of the
# memory the GPU has available (the slice's product and the copy of its gradient rows need room
# too), and within CONV_CHUNK_MAX_BYTES: cuBLAS runs at full speed long before that size.
CONV_CHUNK_SHARE = 4
CONV_CHUNK_MAX_BYTES = 1 << 30

_poison = False


@contextlib.contextmanager
def poison_outputs():
    """Fill every output buffer with NaN (integer ones with INT32_MIN) before a kernel writes it,
    so a test sees any element a kernel forgot to write."""
    global _poison
    before, _poison = _poison, True
    try:
        yield
    finally:
        _poison = before


def source(name: str) -> str:
    """The text of `cuda/<name>` with its local includes expanded (each header once)."""
    return _expand(name, set())


def _expand(name: str, seen: set) -> str:
    if name in seen:
        return ""
    seen.add(name)
    text = (SOURCE_DIR / name).read_text().replace("#pragma once\n", "")
    return re.sub(r'^#include "([\w.]+)"$', lambda m: _expand(m.group(1), seen), text, flags=re.MULTILINE)


def name_expressions(name: str) -> list[str]:
    """The instantiated kernel names of a source: "im2col<float>", "im2col<double>", ..."""
    return [f"{kernel}<{type_name}>" for kernel in KERNELS[name] for type_name in TYPE_NAMES.values()]


@functools.cache
def _module(name: str, device_id: int):
    cupy = cupy_module()
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=source(name), options=COMPILE_OPTIONS, name_expressions=name_expressions(name))


def compile_all(device_id: int = 0) -> list[str]:
    """Compile every source in KERNELS for GPU `device_id`, as the kernels' first launches would
    (the same cached modules), and return the instantiated kernel names, each resolved.

    A setup step for GPU checks: RawModule compiles when a kernel is first looked up, so a missing
    CUDA header or toolkit shows here, with CuPy's own error, before any test runs.
    """
    names = []
    with cupy_module().cuda.Device(device_id):
        for source_name in KERNELS:
            module = _module(source_name, device_id)
            for expression in name_expressions(source_name):
                module.get_function(expression)
                names.append(expression)
    return names


@functools.cache
def _max_blocks(device_id: int) -> int:
    runtime = cupy_module().cuda.runtime
    multiprocessors = runtime.deviceGetAttribute(runtime.cudaDevAttrMultiProcessorCount, device_id)
    return multiprocessors * BLOCKS_PER_MULTIPROCESSOR


def _on_device_of(array):
    """`with` this around a wrapper's allocations, copies and launch: all on `array`'s GPU."""
    return cupy_module().cuda.Device(array.device.id)


def _launch(source_name: str, kernel: str, like, total: int, *args) -> None:
    """Run `kernel` from `source_name` for `like`'s dtype over `total` elements, on `like`'s GPU
    (a module's functions are loaded per device: the lookup must happen there too)."""
    type_name = TYPE_NAMES.get(like.dtype)
    if type_name is None:
        raise TypeError(f"minicnn's CUDA kernels take float32 or float64 arrays, got {like.dtype}")
    if total == 0:
        return
    device_id = like.device.id
    with cupy_module().cuda.Device(device_id):
        function = _module(source_name, device_id).get_function(f"{kernel}<{type_name}>")
        blocks = min(-(-total // BLOCK_SIZE), _max_blocks(device_id))
        function((blocks,), (BLOCK_SIZE,), (*args,))


def empty(shape: tuple, dtype):
    """An output buffer, on the current GPU, that a kernel or a loop of kernels will fill
    completely (NaN-filled, or INT32_MIN for integers, under `poison_outputs`)."""
    cupy = cupy_module()
    if not _poison:
        return cupy.empty(shape, dtype=dtype)
    fill = np.nan if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min
    return cupy.full(shape, fill, dtype=dtype)


def _contiguous(array):
    return cupy_module().ascontiguousarray(array)


def conv_chunk_size(window: Window, itemsize: int) -> int:
    """How many images a convolution takes at a time on the current GPU: as many as keep one
    slice's im2col matrix, (C*kH*kW, n*oH*oW), within min(CONV_CHUNK_MAX_BYTES, available /
    CONV_CHUNK_SHARE), and at least one (an empty batch included).

    The whole batch at once would be fastest, but its matrix is kH*kW times the input: VGG-16's
    conv1_2 at batch 256 would need 30 GB in float32. Free memory is asked each time, so the
    slices shrink as the activations of a deep network fill the GPU.
    """
    per_image = window.c * window.kh * window.kw * window.oh * window.ow * itemsize
    budget = min(CONV_CHUNK_MAX_BYTES, _available_bytes() // CONV_CHUNK_SHARE)
    return max(1, budget // per_image)


def _available_bytes() -> int:
    """Bytes the current GPU can hand out: what the driver has free plus what CuPy's memory pool
    holds unused (the pool serves allocations from those first)."""
    cupy = cupy_module()
    free, _total = cupy.cuda.Device().mem_info
    return free + cupy.get_default_memory_pool().free_bytes()


def add(a, b):
    """a + b (CuPy's element-wise kernel; any broadcast)."""
    return a + b


def fuses_momentum_step(param, grad, buffer) -> bool:
    """No fused SGD step here: CuPy's in-place operations serve the GPU."""
    return False


def has_c_kernels(dtype) -> bool:
    """No batch-norm or ReLU kernels here: functional's CuPy expressions serve the GPU."""
    return False


# The direct convolution's backward is the im2col one (Conv2d.backward), as for every layer here.
DIRECT_BACKWARD = False


def uses_direct_conv(window: Window, groups: int, out_channels: int, dtype) -> bool:
    """Whether `direct_conv2d` serves this layer better than im2col + cuBLAS: few products per
    output (any number of output channels, any dtype)."""
    return window.c // groups * window.kh * window.kw <= DIRECT_CONV_MAX_TAPS


def im2col(x, window: Window):
    """x: (N, C, H, W) -> cols (C*kH*kW, N*oH*oW), channel-major, padding read as zeros."""
    with _on_device_of(x):
        x = _contiguous(x)
        cols = empty((window.c * window.kh * window.kw, window.n * window.oh * window.ow), x.dtype)
        _launch("conv.cu", "im2col", x, cols.size, x, cols, np.int64(cols.size), *window.kernel_args())
    return cols


def col2im(cols, window: Window, out=None):
    """The adjoint of `im2col`: cols (C*kH*kW, N*oH*oW) -> (N, C, H, W), into `out` (C-contiguous)
    when given; one thread per input element gathering from every window over it (no atomics:
    deterministic)."""
    with _on_device_of(cols):
        cols = _contiguous(cols)
        dx = empty((window.n, window.c, window.h, window.w), cols.dtype) if out is None else out
        _launch("conv.cu", "col2im", cols, dx.size, cols, dx, np.int64(dx.size), *window.kernel_args())
    return dx


def conv_epilogue(cm, shape: tuple, bias, activation: str | None, out=None):
    """cm (C_out, N*oH*oW) -> y (N, C_out, oH, oW) with bias (C_out,) and activation, one pass,
    into `out` (C-contiguous) when given."""
    n, channels, oh, ow = shape
    with _on_device_of(cm):
        y = empty(shape, cm.dtype) if out is None else out
        cm = _contiguous(cm.astype(y.dtype, copy=False))  # one element type for the kernel, y's
        bias_arg = cm if bias is None else _contiguous(bias.astype(y.dtype, copy=False))
        _launch("conv.cu", "conv_epilogue", cm, y.size, cm, bias_arg, y, np.int64(y.size), np.int32(bias is not None),
                np.int32(ACTIVATIONS[activation]), np.int32(n), np.int32(channels), np.int64(oh * ow))
    return y


def direct_conv2d(x, weight, bias, window: Window, groups: int, activation: str | None):
    """x: (N, C, H, W), weight: (C_out, C/groups, kH, kW) -> y (N, C_out, oH, oW) with bias and
    activation, every output summing its products straight from x, in x's dtype (as on the CPU)."""
    with _on_device_of(x):
        x, weight = _contiguous(x), _contiguous(weight.astype(x.dtype, copy=False))
        out_channels = weight.shape[0]
        y = empty((window.n, out_channels, window.oh, window.ow), x.dtype)
        bias_arg = weight if bias is None else _contiguous(bias.astype(x.dtype, copy=False))
        _launch("conv.cu", "direct_conv2d", x, y.size, x, weight, bias_arg, y, np.int64(y.size),
                np.int32(bias is not None), np.int32(ACTIVATIONS[activation]), np.int32(out_channels),
                np.int32(groups), *window.kernel_args())
    return y


def max_pool(x, window: Window):
    """x: (N, C, H, W) -> (y, argmax), both (N, C, oH, oW); argmax (int32) is the kernel offset
    a*kW + b of each window's first maximum among its real cells (a NaN counts as the maximum)."""
    shape = (window.n, window.c, window.oh, window.ow)
    with _on_device_of(x):
        x = _contiguous(x)
        y, argmax = empty(shape, x.dtype), empty(shape, np.int32)
        _launch("pool.cu", "max_pool", x, y.size, x, y, argmax, np.int64(y.size), *window.kernel_args())
    return y, argmax


def max_pool_backward(g, argmax, window: Window):
    """g, argmax: (N, C, oH, oW) -> (N, C, H, W), each input element gathering the gradient of
    every window whose argmax it is."""
    with _on_device_of(g):
        g = _contiguous(g)
        dx = empty((window.n, window.c, window.h, window.w), g.dtype)
        _launch("pool.cu", "max_pool_backward", g, dx.size, g, _contiguous(argmax), dx, np.int64(dx.size),
                *window.kernel_args())
    return dx


def avg_pool(x, window: Window, count_include_pad: bool):
    """x: (N, C, H, W) -> (N, C, oH, oW), each window's sum over its divisor (PyTorch's counts)."""
    with _on_device_of(x):
        x = _contiguous(x)
        y = empty((window.n, window.c, window.oh, window.ow), x.dtype)
        _launch("pool.cu", "avg_pool", x, y.size, x, y, np.int64(y.size), np.int32(count_include_pad),
                *window.kernel_args())
    return y


def avg_pool_backward(g, window: Window, count_include_pad: bool):
    """g: (N, C, oH, oW) -> (N, C, H, W), each input element gathering gradient / divisor of
    every window over it."""
    with _on_device_of(g):
        g = _contiguous(g)
        dx = empty((window.n, window.c, window.h, window.w), g.dtype)
        _launch("pool.cu", "avg_pool_backward", g, dx.size, g, dx, np.int64(dx.size), np.int32(count_include_pad),
                *window.kernel_args())
    return dx
