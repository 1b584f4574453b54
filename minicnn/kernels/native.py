"""Our own C kernels for the CPU (c/*.c): built by the machine's C compiler, loaded with ctypes.

The CPU's counterpart of the CUDA kernels: the direct convolution (forward, input and weight
gradients), max pooling, batch normalisation, ReLU and addition, vectorized with GCC/Clang vector
extensions and threaded with OpenMP. The sources are compiled once per machine, for float and for double, with -march=native,
into a cache folder ($MINICNN_CACHE_DIR, else $XDG_CACHE_HOME/minicnn, else ~/.cache/minicnn)
under a key made of the sources, the compiler's version, the flags and the CPU's feature list.
A finished build is renamed into place, so processes that build at once never see half a library.

Their OpenMP threads take every core. BLAS keeps to one thread once they load: OpenBLAS's idle
workers spin for a while after each product, and on cores that our threads want next, that
spinning made a LeNet-5 training step 1.5x slower (threadpoolctl sets the limit on whichever BLAS
NumPy loaded). And glibc keeps freed arrays for reuse (`_keep_freed_memory`).

Where the results can differ from the NumPy kernels' beyond rounding: an infinite or NaN input
value can make more of a weight gradient NaN (the lanes over positions multiply a neighbouring
input by a zero gradient, and 0 * inf is NaN), and ReLU may keep the sign of a -0.0.

Nothing here is required: with no C compiler (or MINICNN_NATIVE=0 in the environment the process
starts with) `library()` is None and the CPU keeps to the NumPy kernels, which compute the same
values; a failed build warns once, with the compiler's message. Every function takes C-contiguous
arrays of one dtype (float32/float64) and a `Window` for its geometry, as the other kernel
modules do.
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
import threadpoolctl

from minicnn.kernels.window import Window

SOURCE_DIR = Path(__file__).with_name("c")
SOURCES = ("conv.c", "pool.c", "norm.c", "elementwise.c")
REALS = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# Tried in order: the first set that builds is kept (a compiler without OpenMP gets one thread).
FLAG_SETS = (
    ("-O3", "-march=native", "-std=gnu11", "-fPIC", "-shared", "-fopenmp"),
    ("-O3", "-march=native", "-std=gnu11", "-fPIC", "-shared"),
)

_pointer, _long, _int = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
SIGNATURES = {
    "conv_forward": [_pointer] * 5 + [_long] * 13 + [_int],
    "conv_weight_grad": [_pointer] * 5 + [_long] * 13,
    "max_pool": [_pointer] * 3 + [_long] * 11,
    "max_pool_backward": [_pointer] * 3 + [_long] * 10,
    "batch_norm_stats": [_pointer] * 3 + [_long] * 3,
    "batch_norm_forward": [_pointer] * 6 + [_long] * 3,
    "batch_norm_sums": [_pointer] * 6 + [_long] * 3,
    "batch_norm_input_grad": [_pointer] * 8 + [_long] * 3,
    "relu_forward": [_pointer] * 2 + [_long],
    "relu_backward": [_pointer] * 3 + [_long],
    "add": [_pointer] * 3 + [_long],
    "momentum_step": [_pointer] * 3 + [_long] + [ctypes.c_double] * 3,
}


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


def configure_threads() -> None:
    """Apply the process-wide settings that loading the C kernels makes (BLAS on one thread, glibc
    keeping freed memory) now rather than at the first op that needs the kernels: a training run
    calls this before building anything, so every op of the run, fresh or resumed, has the same
    settings. Otherwise a model whose first op is a BLAS product (Flatten then Linear) does the
    products before the kernels load on every thread, and a resumed run, which starts later in the
    run, adds its sums in another order than an unbroken one. Does nothing where the kernels are
    not built (BLAS then keeps its threads throughout)."""
    library(np.float32)


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
            for name, argtypes in SIGNATURES.items():
                getattr(lib, name).argtypes = argtypes
                getattr(lib, name).restype = _int
            threadpoolctl.threadpool_limits(1, user_api="blas")
            _keep_freed_memory()
            return lib
    _warn(f"{compiler} failed: {errors[-1]}")
    return None


# glibc's mallopt parameters, and the largest mmap threshold it takes on 64-bit machines
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX = -1, -3, 32 << 20


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next array instead of handing it back to the system.

    Every op returns fresh arrays of a few megabytes. By default glibc maps each one anew and
    unmaps it when freed, so the next one starts with page faults and pages zeroed by the kernel:
    that was 12-17% of a ResNet-20 training step here. With these thresholds arrays up to 32 MB
    reuse freed heap memory. The peak memory stays what it was; the memory is not returned between
    steps. Other C libraries (musl, macOS) have no mallopt and keep their own behaviour.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:
        return
    mallopt.argtypes, mallopt.restype = [_int, _int], _int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)


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
    for path in sorted(SOURCE_DIR.glob("*.[ch]")):  # every source and header the build can read
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


def _address(array):
    """The address of an array's first element, for ctypes (None stays None). Through a ctypes view
    of the buffer where the array is writable: a third of the time of array.ctypes.data, which
    builds a helper object on every call. The arrays here are C-contiguous; a read-only or empty one
    takes the slower way."""
    if array is None:
        return None
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):
        return array.ctypes.data


VECTOR_BYTES = 64  # c/vector.h's vector: 16 float32 or 8 float64 lanes
UNSUPPORTED = -2


def takes_stride(out_channels: int, kernel_width: int, dtype) -> bool:
    """Whether the C convolution takes a stride other than 1: where its lanes hold output channels
    in both passes (C_out a multiple of two vectors, kernel width 1, 3 or 5)."""
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    return out_channels % (2 * lanes) == 0 and kernel_width in (1, 3, 5)


def _check(status: int, name: str) -> None:
    if status == UNSUPPORTED:
        raise ValueError(f"minicnn: the C kernel {name} does not take this stride (see native.takes_stride)")
    if status != 0:
        raise MemoryError(f"minicnn: the C kernel {name} ran out of memory")


def conv_forward(x, weight, bias, window: Window, relu: bool, mask=None):
    """y (N, C_out, oH, oW) = x (N, C_in, H, W) cross-correlated with weight (C_out, C_in, kH, kW),
    with the window's stride (1, or see takes_stride), plus bias (C_out,) when given, then ReLU
    when `relu`. With `mask` (shaped like x), x counts only where mask > 0."""
    out_channels = weight.shape[0]
    y = np.empty((window.n, out_channels, window.oh, window.ow), dtype=x.dtype)
    status = library(x.dtype).conv_forward(
        _address(x), _address(weight), _address(bias), _address(mask), _address(y),
        window.n, window.c, window.h, window.w, out_channels, window.kh, window.kw, window.pads[0], window.pads[2],
        window.oh, window.ow, window.sh, window.sw, int(relu))
    _check(status, "conv_forward")
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
    status = library(x.dtype).conv_weight_grad(
        _address(x), _address(g), _address(mask), _address(gw), _address(gb),
        window.n, window.c, window.h, window.w, out_channels, window.kh, window.kw, window.pads[0], window.pads[2],
        window.oh, window.ow, window.sh, window.sw)
    _check(status, "conv_weight_grad")
    return gw, gb


def max_pool(x, window: Window):
    """x (N, C, H, W) -> (y, argmax (uint8)), both (N, C, oH, oW): each window's maximum and the
    offset a*kW + b of its first maximum (a NaN counts as the maximum). kH*kW must be <= 256."""
    y = np.empty((window.n, window.c, window.oh, window.ow), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.uint8)
    status = library(x.dtype).max_pool(
        _address(x), _address(y), _address(argmax), window.n * window.c, window.h, window.w, window.kh, window.kw,
        window.sh, window.sw, window.pads[0], window.pads[2], window.oh, window.ow)
    _check(status, "max_pool")
    return y, argmax


def max_pool_backward(g, argmax, window: Window):
    """g, argmax (N, C, oH, oW) -> gx (N, C, H, W): each window's gradient added at its argmax."""
    gx = np.empty((window.n, window.c, window.h, window.w), dtype=g.dtype)
    status = library(g.dtype).max_pool_backward(
        _address(g), _address(argmax), _address(gx), window.n * window.c, window.h, window.w, window.kw,
        window.sh, window.sw, window.pads[0], window.pads[2], window.oh, window.ow)
    _check(status, "max_pool_backward")
    return gx


def _rows(x):
    """(N, C, positions) of an (N, C, ...) array: the C kernels' view of it."""
    return x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))


def batch_norm_stats(x):
    """x (N, C, ...) -> (mean, var), each (C,): every channel's mean and biased variance."""
    n, c, positions = _rows(x)
    mean, var = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    _check(library(x.dtype).batch_norm_stats(_address(x), _address(mean), _address(var), n, c, positions),
           "batch_norm_stats")
    return mean, var


def batch_norm_forward(x, mean, inv_std, weight, bias):
    """y = (x - mean) * inv_std * weight + bias per channel for x (N, C, ...) ((C,) each; weight
    and bias may be None)."""
    y = np.empty_like(x)
    _check(library(x.dtype).batch_norm_forward(
        _address(x), _address(mean), _address(inv_std), _address(weight), _address(bias), _address(y), *_rows(x)),
        "batch_norm_forward")
    return y


def batch_norm_sums(g, x, mean, inv_std):
    """(Σ g, Σ g * x_hat) per channel, each (C,), x_hat = (x - mean) * inv_std: batch norm's bias
    and weight gradients."""
    g_sum, g_dot = np.empty(g.shape[1], dtype=g.dtype), np.empty(g.shape[1], dtype=g.dtype)
    _check(library(g.dtype).batch_norm_sums(_address(g), _address(x), _address(mean), _address(inv_std),
                                            _address(g_sum), _address(g_dot), *_rows(g)), "batch_norm_sums")
    return g_sum, g_dot


def batch_norm_input_grad(g, x, mean, inv_std, scale, sums=None):
    """gx = scale * (g - mean(g) - x_hat * mean(g * x_hat)) per channel, x_hat = (x - mean) * inv_std,
    from sums = (Σ g, Σ g * x_hat) (training); without sums (evaluation), gx = scale * g."""
    gx = np.empty_like(g)
    g_sum, g_dot = sums if sums is not None else (None, None)
    _check(library(g.dtype).batch_norm_input_grad(
        _address(g), _address(x), _address(mean), _address(inv_std), _address(scale), _address(g_sum),
        _address(g_dot), _address(gx), *_rows(g)), "batch_norm_input_grad")
    return gx


def relu_forward(x):
    """max(x, 0), NaN kept."""
    y = np.empty_like(x)
    _check(library(x.dtype).relu_forward(_address(x), _address(y), x.size), "relu_forward")
    return y


def relu_backward(g, y):
    """g where y > 0, else 0."""
    gx = np.empty_like(g)
    _check(library(g.dtype).relu_backward(_address(g), _address(y), _address(gx), g.size), "relu_backward")
    return gx


def add(a, b):
    """a + b, element-wise, for two arrays of one shape and dtype."""
    out = np.empty_like(a)
    _check(library(a.dtype).add(_address(a), _address(b), _address(out), a.size), "add")
    return out


def momentum_step(param, grad, buffer, lr: float, momentum: float, dampening: float) -> None:
    """In place: buffer = momentum * buffer + (1 - dampening) * grad, then param -= lr * buffer;
    three contiguous arrays of one shape and dtype."""
    _check(library(param.dtype).momentum_step(_address(param), _address(grad), _address(buffer), param.size, lr,
                                              momentum, dampening), "momentum_step")
