"""Our own C kernels for the CPU (c/*.c): built by the machine's C compiler, loaded with ctypes.

The CPU's counterpart of the CUDA kernels: the direct convolution (forward, input and weight
gradients), max pooling, batch normalisation, ReLU and addition, vectorized with GCC/Clang vector
extensions and threaded with OpenMP. The sources are compiled once per machine, for float and for double, with -march=native,
into a cache folder ($MINICNN_CACHE_DIR, else $XDG_CACHE_HOME/minicnn, else ~/.cache/minicnn)
under a key made of the sources, the compiler's version, the flags and the CPU's feature list.
A finished build is renamed into place, so processes that build at once never see half a library.

Loading them changes nothing else in the process: their threads, BLAS's and malloc's settings
are made in minicnn.kernels.settings.

Where the results can differ from the NumPy kernels' beyond rounding: an infinite or NaN input
value can make more of a weight gradient NaN (the lanes over positions multiply a neighbouring
input by a zero gradient, and 0 * inf is NaN), and ReLU may keep the sign of a -0.0.

Nothing here is required: with no C compiler (or MINICNN_NATIVE=0 in the environment the process
starts with) `library()` is None and the CPU keeps to the NumPy kernels, which compute the same
values; a failed build warns once, with the compiler's message. Every function takes C-contiguous
arrays of one dtype (float32/float64) and a `Window` for its geometry, as the other kernel
modules do. Each C function's ctypes signature is made from its entry in
minicnn.kernels.signatures, so it takes the arrays (None for an absent one), numbers and `Window`
themselves, and its status is checked after every call (`_check`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

from minicnn.kernels import signatures
from minicnn.kernels.window import Window, Window2d

SOURCE_DIR = Path(__file__).with_name("c")
SOURCES = ("conv.c", "pool.c", "norm.c", "elementwise.c")
WINDOW_HEADER = Path(__file__).with_name("window.h")  # Window2d, shared with the CUDA kernels
REALS = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# Tried in order: the first set that builds is kept (a compiler without OpenMP gets one thread).
FLAG_SETS = (
    ("-O3", "-march=native", "-std=gnu11", "-fPIC", "-shared", "-fopenmp"),
    ("-O3", "-march=native", "-std=gnu11", "-fPIC", "-shared"),
)


class NativeBuildWarning(UserWarning):
    """The C kernels could not be built; the CPU runs the NumPy kernels instead."""


@functools.cache
def enabled() -> bool:
    """False when MINICNN_NATIVE=0: keep to the NumPy kernels (to read them, or to compare). Read
    once, on the first call (every op asks, through library()), as the libraries are loaded once."""
    return os.environ.get("MINICNN_NATIVE", "1") != "0"


def cache_dir() -> Path:
    if os.environ.get("MINICNN_CACHE_DIR"):
        return Path(os.environ["MINICNN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minicnn"


def library(dtype):
    """The loaded C kernels for `dtype` (float32 or float64), or None: disabled, another dtype, or
    no compiler that builds them."""
    dtype = np.dtype(dtype)
    if not enabled() or dtype not in REALS:
        return None
    return _load(REALS[dtype])


@functools.cache
def _load(real: str):
    wanted = os.environ.get("CC")
    compiler = shutil.which(wanted) if wanted else shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        _warn(f"the compiler CC={wanted} was not found" if wanted else "no C compiler found: install gcc, or set CC")
        return None
    errors = []
    for flags in FLAG_SETS:
        try:
            path = _build(compiler, flags, real, errors)
            lib = None if path is None else ctypes.CDLL(str(path))
        except (OSError, subprocess.SubprocessError) as error:  # unwritable cache, timeout, missing libgomp
            errors.append(f"{type(error).__name__}: {error}")
            continue
        if lib is not None:
            for name, signature in signatures.C_KERNELS.items():
                function = getattr(lib, name)
                function.argtypes = [ARGTYPES[kind] for kind in signature.types]
                function.restype, function.errcheck = ctypes.c_int, _check
            return lib
    _warn(f"{compiler} failed: {errors[-1]}")
    return None


def _build(compiler: str, flags: tuple, real: str, errors: list) -> Path | None:
    """The built library's path (built now unless the cache has it), or None if it fails to build."""
    command = [compiler, *flags, f"-DREAL={real}", *(str(SOURCE_DIR / s) for s in SOURCES), "-lm"]
    target = cache_dir() / "native" / f"minicnn-{real}-{_build_key(compiler, command)}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        result = subprocess.run([*command, "-o", str(built)], capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            errors.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}")
            return None
        os.replace(built, target)
    return target


def _build_key(compiler: str, command: list) -> str:
    digest = hashlib.sha256()
    for path in [*sorted(SOURCE_DIR.glob("*.[ch]")), WINDOW_HEADER]:  # every source and header the build reads
        digest.update(path.read_bytes())
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    digest.update("\0".join([version, *command[1:], platform.machine(), _cpu_features()]).encode())
    return digest.hexdigest()[:16]


def _cpu_features() -> str:
    """The CPU's feature flags, so a cache shared between machines never runs another's -march=native."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _warn(reason: str) -> None:
    warnings.warn(f"minicnn: the C kernels were not built ({reason}); the CPU runs the slower NumPy kernels",
                  NativeBuildWarning, stacklevel=3)


class _Array:
    """How ctypes passes an array argument: the address of its first element (None is NULL).
    Through a ctypes view of the buffer where the array is writable: a third of the time of
    array.ctypes.data, which builds a helper object on every call. The arrays here are
    C-contiguous; a read-only or empty one takes the slower way."""

    @staticmethod
    def from_param(array):
        if array is None:
            return None
        try:
            return ctypes.byref(ctypes.c_char.from_buffer(array))
        except (TypeError, ValueError):
            return ctypes.c_void_p(array.ctypes.data)


# What ctypes makes of each type of minicnn.kernels.signatures.
ARGTYPES = {"real*": _Array, "int*": _Array, "byte*": _Array, "int": ctypes.c_int, "long": ctypes.c_long,
            "double": ctypes.c_double, "window": Window2d}


VECTOR_BYTES = 64  # c/vector.h's vector: 16 float32 or 8 float64 lanes
UNSUPPORTED = -2


def takes_stride(out_channels: int, kernel_width: int, dtype) -> bool:
    """Whether the C convolution takes a stride other than 1: where its lanes hold output channels
    in both passes (C_out a multiple of two vectors, kernel width 1, 3 or 5)."""
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    return out_channels % (2 * lanes) == 0 and kernel_width in (1, 3, 5)


def _check(status: int, function, arguments) -> int:
    """Every C function's errcheck: ctypes calls it with the status the function returned."""
    if status == UNSUPPORTED:
        raise ValueError(f"minicnn: the C kernel {function.__name__} does not take this stride "
                         "(see native.takes_stride)")
    if status != 0:
        raise MemoryError(f"minicnn: the C kernel {function.__name__} ran out of memory")
    return status


def conv_forward(x, weight, bias, window: Window, relu: bool, mask=None):
    """y (N, C_out, oH, oW) = x (N, C_in, H, W) cross-correlated with weight (C_out, C_in, kH, kW),
    with the window's stride (1, or see takes_stride), plus bias (C_out,) when given, then ReLU
    when `relu`. With `mask` (shaped like x), x counts only where mask > 0."""
    out_channels = weight.shape[0]
    y = np.empty((window.n, out_channels, window.oh, window.ow), dtype=x.dtype)
    library(x.dtype).conv_forward(x, weight, bias, mask, y, window, out_channels, relu)
    return y


def conv_input_grad(g, weight, window: Window, mask=None):
    """gx (N, C_in, H, W) for g (N, C_out, oH, oW): the stride-1 convolution of g with the filters
    turned around (flipped, C_in and C_out swapped), padded by kernel - 1 - pad; g counts only where
    mask > 0 when given. A strided layer's gx splits by phase: the rows iy = sH*m + py (and likewise
    the columns) receive only the taps ky = py + top (mod sH), so each phase is a stride-1
    convolution of g with that part of the filters, and no product falls on a skipped position."""
    if window.stride == (1, 1):
        return _turned_conv(g, weight, window.pads[0], window.pads[2], (window.h, window.w), mask)
    gx = np.zeros((window.n, window.c, window.h, window.w), dtype=g.dtype)
    for py in range(min(window.sh, window.h)):
        rows, ky0, top = _phase(py, window.sh, window.pads[0], window.h)
        for px in range(min(window.sw, window.w)):
            columns, kx0, left = _phase(px, window.sw, window.pads[2], window.w)
            taps = weight[:, :, ky0 :: window.sh, kx0 :: window.sw]
            if taps.size:  # else no tap reaches this phase: its gradient stays zero
                gx[:, :, py :: window.sh, px :: window.sw] = _turned_conv(g, taps, top, left, (rows, columns), mask)
    return gx


def _phase(p: int, stride: int, pad: int, size: int) -> tuple:
    """For input positions p, p + stride, ... along one axis: how many there are, the first tap that
    reaches them (k0 = p + pad mod stride), and the offset d = (p + pad - k0) / stride, so that
    position p + stride*m reads g at m + d - j through tap k0 + stride*j."""
    k0 = (p + pad) % stride
    return (size - p + stride - 1) // stride, k0, (p + pad - k0) // stride


def _turned_conv(g, taps, top: int, left: int, out_size: tuple, mask):
    """The stride-1 convolution of g (N, C_out, oH, oW) with `taps` (C_out, C_in, a, b) turned
    around (flipped, C_in and C_out swapped), where gx position m reads g from m + top - (a - 1) on
    (top/left: the forward pass's padding, or a phase's offset d): an input gradient of out_size."""
    turned = np.ascontiguousarray(taps[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    (kh, kw), before = turned.shape[2:], (turned.shape[2] - 1 - top, turned.shape[3] - 1 - left)
    pads = (before[0], out_size[0] + kh - 1 - g.shape[2] - before[0], before[1], out_size[1] + kw - 1 - g.shape[3] - before[1])
    return conv_forward(g, turned, None, Window.over(g.shape, (kh, kw), (1, 1), (1, 1), pads, out_size), relu=False,
                        mask=mask)


def conv_weight_grad(x, g, window: Window, with_bias: bool, mask=None):
    """(gw (C_out, C_in, kH, kW), gb (C_out,) or None) for the convolution of x over `window` that
    gave g (N, C_out, oH, oW); g counts only where mask > 0 when given."""
    out_channels = g.shape[1]
    gw = np.empty((out_channels, window.c, window.kh, window.kw), dtype=x.dtype)
    gb = np.empty(out_channels, dtype=x.dtype) if with_bias else None
    library(x.dtype).conv_weight_grad(x, g, mask, gw, gb, window, out_channels)
    return gw, gb


def max_pool(x, window: Window):
    """x (N, C, H, W) -> (y, argmax (uint8)), both (N, C, oH, oW): each window's maximum and the
    offset a*kW + b of its first maximum (a NaN counts as the maximum). kH*kW must be <= 256."""
    y = np.empty((window.n, window.c, window.oh, window.ow), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.uint8)
    library(x.dtype).max_pool(x, y, argmax, window)
    return y, argmax


def max_pool_backward(g, argmax, window: Window):
    """g, argmax (N, C, oH, oW) -> gx (N, C, H, W): each window's gradient added at its argmax."""
    gx = np.empty((window.n, window.c, window.h, window.w), dtype=g.dtype)
    library(g.dtype).max_pool_backward(g, argmax, gx, window)
    return gx


def _rows(x):
    """(N, C, positions) of an (N, C, ...) array: the C kernels' view of it."""
    return x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))


def batch_norm_stats(x):
    """x (N, C, ...) -> (mean, var), each (C,): every channel's mean and biased variance."""
    n, c, positions = _rows(x)
    mean, var = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    library(x.dtype).batch_norm_stats(x, mean, var, n, c, positions)
    return mean, var


def batch_norm_forward(x, mean, inv_std, weight, bias):
    """y = (x - mean) * inv_std * weight + bias per channel for x (N, C, ...) ((C,) each; weight
    and bias may be None)."""
    y = np.empty_like(x)
    library(x.dtype).batch_norm_forward(x, mean, inv_std, weight, bias, y, *_rows(x))
    return y


def batch_norm_sums(g, x, mean, inv_std):
    """(Σ g, Σ g * x_hat) per channel, each (C,), x_hat = (x - mean) * inv_std: batch norm's bias
    and weight gradients."""
    g_sum, g_dot = np.empty(g.shape[1], dtype=g.dtype), np.empty(g.shape[1], dtype=g.dtype)
    library(g.dtype).batch_norm_sums(g, x, mean, inv_std, g_sum, g_dot, *_rows(g))
    return g_sum, g_dot


def batch_norm_input_grad(g, x, mean, inv_std, scale, sums=None):
    """gx = scale * (g - mean(g) - x_hat * mean(g * x_hat)) per channel, x_hat = (x - mean) * inv_std,
    from sums = (Σ g, Σ g * x_hat) (training); without sums (evaluation), gx = scale * g."""
    gx = np.empty_like(g)
    g_sum, g_dot = sums if sums is not None else (None, None)
    library(g.dtype).batch_norm_input_grad(g, x, mean, inv_std, scale, g_sum, g_dot, gx, *_rows(g))
    return gx


def relu_forward(x):
    """max(x, 0), NaN kept."""
    y = np.empty_like(x)
    library(x.dtype).relu_forward(x, y, x.size)
    return y


def relu_backward(g, y):
    """g where y > 0, else 0."""
    gx = np.empty_like(g)
    library(g.dtype).relu_backward(g, y, gx, g.size)
    return gx


def add(a, b):
    """a + b, element-wise, for two arrays of one shape and dtype."""
    out = np.empty_like(a)
    library(a.dtype).add(a, b, out, a.size)
    return out


def momentum_step(param, grad, buffer, lr: float, momentum: float, dampening: float) -> None:
    """In place: buffer = momentum * buffer + (1 - dampening) * grad, then param -= lr * buffer;
    three contiguous arrays of one shape and dtype."""
    library(param.dtype).momentum_step(param, grad, buffer, param.size, lr, momentum, dampening)
