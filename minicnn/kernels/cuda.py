"""The GPU's kernel backend: the reference kernels over CuPy, with our own CUDA C++ (cuda/*.cu),
loaded with cupy.RawModule, for convolution and pooling.

Each source is compiled by NVRTC the first time a kernel of it runs on a device, then kept for
the process (and by CuPy's on-disk cache across processes). Local `#include "x.cuh"` lines (and
`"../window.h"`, the struct shared with the C kernels) are expanded here before compiling (each
header once, so `#pragma once` is dropped), so the source CuPy hashes for its cache is everything
NVRTC sees.

Launches follow four rules: each method allocates, copies, resolves its kernel and launches on
its input's GPU (CuPy would use the current one, which for a `cuda:N` array need not be N); inputs
are made C-contiguous first; arguments are packed by the kernel's signature in
minicnn.kernels.signatures (NumPy int32/int64 for the numbers, as CuPy would pass a Python int as
a 64-bit long, and a Window as its Window2d struct); every kernel walks its output with a 64-bit
grid-stride loop, so a capped grid covers any size. Dense products are not here: they are
cuBLAS's, through CuPy's matmul, in the reference backend's convolution.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import re
from pathlib import Path

import numpy as np

from minicnn.backend import cupy_module
from minicnn.kernels import signatures
from minicnn.kernels.reference import ReferenceBackend, image_columns
from minicnn.kernels.window import Window

SOURCE_DIR = Path(__file__).with_name("cuda")
# Each source and the signatures of the templated kernels it defines, instantiated for every
# dtype in TYPE_NAMES.
KERNELS = signatures.CUDA_KERNELS
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
    return re.sub(r'^#include "([\w./]+)"$', lambda m: _expand(m.group(1), seen), text, flags=re.MULTILINE)


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


def _as_is(value):
    return value


# What a launch hands CuPy for each type of minicnn.kernels.signatures: the NumPy scalar of the
# kernel's C type (CuPy would pass a Python int as a 64-bit long), a Window as its Window2d struct
# (CuPy passes a one-element NumPy array by value), arrays as they are.
PACKERS = {"real*": _as_is, "int*": _as_is, "byte*": _as_is, "int": np.int32, "long": np.int64,
           "double": np.float64, "window": operator.attrgetter("struct_array")}
_PACKING = {(source, name): tuple(PACKERS[kind] for kind in signature.types)
            for source, kernels in KERNELS.items() for name, signature in kernels.items()}


def _launch(source_name: str, kernel: str, like, total: int, *args) -> None:
    """Run `kernel` from `source_name` for `like`'s dtype over `total` elements, on `like`'s GPU
    (a module's functions are loaded per device: the lookup must happen there too), with `args`
    packed by the kernel's signature in KERNELS."""
    type_name = TYPE_NAMES.get(like.dtype)
    if type_name is None:
        raise TypeError(f"minicnn's CUDA kernels take float32 or float64 arrays, got {like.dtype}")
    packers = _PACKING[source_name, kernel]
    if len(args) != len(packers):
        raise TypeError(f"minicnn: the CUDA kernel {KERNELS[source_name][kernel]} takes {len(packers)} arguments, "
                        f"got {len(args)}")
    if total == 0:
        return
    device_id = like.device.id
    with cupy_module().cuda.Device(device_id):
        function = _module(source_name, device_id).get_function(f"{kernel}<{type_name}>")
        blocks = min(-(-total // BLOCK_SIZE), _max_blocks(device_id))
        function((blocks,), (BLOCK_SIZE,), tuple([pack(arg) for pack, arg in zip(packers, args)]))


def _contiguous(array):
    return cupy_module().ascontiguousarray(array)


def _available_bytes() -> int:
    """Bytes the current GPU can hand out: what the driver has free plus what CuPy's memory pool
    holds unused (the pool serves allocations from those first)."""
    cupy = cupy_module()
    free, _total = cupy.cuda.Device().mem_info
    return free + cupy.get_default_memory_pool().free_bytes()


class CudaBackend(ReferenceBackend):
    """The reference kernels over CuPy, with our CUDA kernels for convolution (im2col, col2im, the
    epilogue, the direct convolution) and pooling; batch norm, ReLU, addition and the momentum step
    are the reference's CuPy expressions. Each launch runs on its input's GPU."""

    def __init__(self):
        super().__init__(cupy_module())

    def empty(self, shape: tuple, dtype):
        """An output buffer, on the current GPU, that a kernel or a loop of kernels will fill
        completely (NaN-filled, or INT32_MIN for integers, under `poison_outputs`)."""
        if not _poison:
            return self.xp.empty(shape, dtype=dtype)
        fill = np.nan if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min
        return self.xp.full(shape, fill, dtype=dtype)

    def conv_chunk_size(self, window: Window, itemsize: int) -> int:
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

    def _conv_input_grad(self, filters, g_rows, window: Window):
        """In the forward pass's slices, each folded into its own images of gx: the matrix
        filters^T @ g_rows is as large as the im2col one."""
        xp = self.xp
        filters_t = xp.ascontiguousarray(filters.transpose(0, 2, 1))  # else CuPy's matmul copies it per slice
        gx = self.empty((window.n, window.c, window.h, window.w), xp.result_type(filters_t, g_rows))
        for images, part in self._slices(window, gx.dtype.itemsize):
            self.col2im(xp.matmul(filters_t, image_columns(g_rows, images, window)), part, out=gx[images])
        return gx

    def _conv_weight_grad(self, g_part, cols):
        """(cols @ g_part^T)^T: CuPy's batched matmul makes each operand C-contiguous first, which
        for cols^T would copy the whole im2col matrix. The operand it copies is then g_part^T,
        C_out/groups rows where cols has C/groups*kH*kW (a ninth of it for a 3x3 layer that keeps
        its width), and the transpose of the weight-sized result is a view."""
        return self.xp.matmul(cols, g_part.transpose(0, 2, 1)).transpose(0, 2, 1)

    def im2col(self, x, window: Window):
        """x: (N, C, H, W) -> cols (C*kH*kW, N*oH*oW), channel-major, padding read as zeros."""
        with _on_device_of(x):
            x = _contiguous(x)
            cols = self.empty((window.c * window.kh * window.kw, window.n * window.oh * window.ow), x.dtype)
            _launch("conv.cu", "im2col", x, cols.size, x, cols, cols.size, window)
        return cols

    def col2im(self, cols, window: Window, out=None):
        """The adjoint of `im2col`: cols (C*kH*kW, N*oH*oW) -> (N, C, H, W), into `out` (C-contiguous)
        when given; one thread per input element gathering from every window over it (no atomics:
        deterministic)."""
        with _on_device_of(cols):
            cols = _contiguous(cols)
            dx = self.empty((window.n, window.c, window.h, window.w), cols.dtype) if out is None else out
            _launch("conv.cu", "col2im", cols, dx.size, cols, dx, dx.size, window)
        return dx

    def conv_epilogue(self, cm, shape: tuple, bias, activation: str | None, out=None):
        """cm (C_out, N*oH*oW) -> y (N, C_out, oH, oW) with bias (C_out,) and activation, one pass,
        into `out` (C-contiguous) when given."""
        n, channels, oh, ow = shape
        with _on_device_of(cm):
            y = self.empty(shape, cm.dtype) if out is None else out
            cm = _contiguous(cm.astype(y.dtype, copy=False))  # one element type for the kernel, y's
            bias_arg = cm if bias is None else _contiguous(bias.astype(y.dtype, copy=False))
            _launch("conv.cu", "conv_epilogue", cm, y.size, cm, bias_arg, y, y.size, bias is not None,
                    ACTIVATIONS[activation], n, channels, oh * ow)
        return y

    def conv2d(self, x, weight, bias, window: Window, groups: int, activation: str | None):
        """Where each output sums few products (at most DIRECT_CONV_MAX_TAPS: C/groups*kH*kW), the
        direct kernel: every output summing its products straight from x, in x's dtype (as on the
        CPU), without an im2col matrix. Else im2col and cuBLAS, in slices (the reference's). The
        backward pass is the reference's for every layer."""
        if window.c // groups * window.kh * window.kw > DIRECT_CONV_MAX_TAPS:
            return super().conv2d(x, weight, bias, window, groups, activation)
        with _on_device_of(x):
            x, weight = _contiguous(x), _contiguous(weight.astype(x.dtype, copy=False))
            out_channels = weight.shape[0]
            y = self.empty((window.n, out_channels, window.oh, window.ow), x.dtype)
            bias_arg = weight if bias is None else _contiguous(bias.astype(x.dtype, copy=False))
            _launch("conv.cu", "direct_conv2d", x, y.size, x, weight, bias_arg, y, y.size, bias is not None,
                    ACTIVATIONS[activation], out_channels, groups, window)
        return y

    def max_pool(self, x, window: Window):
        """x: (N, C, H, W) -> (y, argmax), both (N, C, oH, oW); argmax (int32) is the kernel offset
        a*kW + b of each window's first maximum among its real cells (a NaN counts as the maximum)."""
        shape = (window.n, window.c, window.oh, window.ow)
        with _on_device_of(x):
            x = _contiguous(x)
            y, argmax = self.empty(shape, x.dtype), self.empty(shape, np.int32)
            _launch("pool.cu", "max_pool", x, y.size, x, y, argmax, y.size, window)
        return y, argmax

    def max_pool_backward(self, g, argmax, window: Window):
        """g, argmax: (N, C, oH, oW) -> (N, C, H, W), each input element gathering the gradient of
        every window whose argmax it is."""
        with _on_device_of(g):
            g, argmax = _contiguous(g), argmax.astype(np.int32, copy=False)  # as max_pool gives it (the reference: uint8)
            dx = self.empty((window.n, window.c, window.h, window.w), g.dtype)
            _launch("pool.cu", "max_pool_backward", g, dx.size, g, _contiguous(argmax), dx, dx.size, window)
        return dx

    def avg_pool(self, x, window: Window, count_include_pad: bool):
        """x: (N, C, H, W) -> (N, C, oH, oW), each window's sum over its divisor (PyTorch's counts)."""
        with _on_device_of(x):
            x = _contiguous(x)
            y = self.empty((window.n, window.c, window.oh, window.ow), x.dtype)
            _launch("pool.cu", "avg_pool", x, y.size, x, y, y.size, count_include_pad, window)
        return y

    def avg_pool_backward(self, g, window: Window, count_include_pad: bool):
        """g: (N, C, oH, oW) -> (N, C, H, W), each input element gathering gradient / divisor of
        every window over it."""
        with _on_device_of(g):
            g = _contiguous(g)
            dx = self.empty((window.n, window.c, window.h, window.w), g.dtype)
            _launch("pool.cu", "avg_pool_backward", g, dx.size, g, dx, dx.size, count_include_pad, window)
        return dx
