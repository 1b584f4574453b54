"""Array-level window kernels for convolution and pooling, over NumPy arrays.

Where the machine's C compiler builds our C kernels (minicnn.kernels.native), convolution
(stride 1, and strided layers whose output channels fill the C code's vectors), max pooling,
batch norm, ReLU and large additions run there; everything else, and every layer on a machine
without a compiler (or with MINICNN_NATIVE=0), runs the NumPy code below, which computes the
same values.

`windows` is im2col without the copy: a strided view that shows every kH×kW window of every
image at once. Convolution copies it once into a matrix for one BLAS product; pooling reduces over
its last two axes. `fold_windows` is the way back (each input element collects the gradient of
every window it sits in); it loops over the kH·kW kernel offsets, never over positions or images.

The functions after them are the interface every kernel module offers (see minicnn.kernels).
"""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module
from minicnn.kernels import native
from minicnn.kernels.window import Window


def pad2d(x, pads: tuple, value: float = 0.0):
    """Pad the last two axes. x: (N, C, H, W); pads: (top, bottom, left, right) -> (N, C, H+t+b, W+l+r)."""
    if not any(pads):
        return x
    top, bottom, left, right = pads
    xp = get_array_module(x)
    padded = xp.full(x.shape[:2] + (x.shape[2] + top + bottom, x.shape[3] + left + right), value, dtype=x.dtype)
    padded[:, :, top : top + x.shape[2], left : left + x.shape[3]] = x
    return padded


def unpad2d(x, pads: tuple):
    """Crop what `pad2d` added (a view)."""
    top, bottom, left, right = pads
    return x[:, :, top : x.shape[2] - bottom, left : x.shape[3] - right]


def windows(x, kernel: tuple, stride: tuple, dilation: tuple, out_size: tuple):
    """Every window as a zero-copy view.

    x: (N, C, H, W), already padded -> (N, C, oH, oW, kH, kW) where
    view[n, c, i, j, a, b] = x[n, c, i*sH + a*dH, j*sW + b*dW].
    """
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    if (oh - 1) * sh + (kh - 1) * dh >= x.shape[2] or (ow - 1) * sw + (kw - 1) * dw >= x.shape[3]:
        raise ValueError(f"windows: {out_size} windows of {kernel} do not fit in {x.shape[2:]}")
    n_s, c_s, h_s, w_s = x.strides
    return xp.lib.stride_tricks.as_strided(
        x,
        shape=(x.shape[0], x.shape[1], oh, ow, kh, kw),
        strides=(n_s, c_s, h_s * sh, w_s * sw, h_s * dh, w_s * dw),
        writeable=False,
    )


def fold_windows(cols, shape: tuple, stride: tuple, dilation: tuple):
    """Sum each window's values back onto the positions it was read from.

    cols: (kH, kW, A, B, oH, oW) -> (A, B, H, W), `shape` being the padded input's (A, B, H, W).
    The adjoint of `windows` (with its kernel axes moved to the front), so it is the input
    gradient of any op that reads windows. A and B are the two leading axes in whatever order the
    caller keeps them: (N, C) for pooling, (C, N) for convolution's channel-major matrices.
    Each kernel offset adds one whole (A, B, oH, oW) slab, so the loop runs kH*kW times.
    """
    xp = get_array_module(cols)
    kh, kw, _, _, oh, ow = cols.shape
    out = xp.zeros(shape, dtype=cols.dtype)
    for (a, b), where in offset_slices((kh, kw), stride, dilation, (oh, ow)):
        out[where] += cols[a, b]
    return out


def offset_slices(kernel: tuple, stride: tuple, dilation: tuple, out_size: tuple):
    """For each kernel offset (a, b), in row-major order, the index of the (.., .., oH, oW) slab of
    a padded input that the windows read at that offset: x[where][..., i, j] is window (i, j)'s
    cell (a, b). Pooling and col2im loop over these kH*kW slabs instead of over windows."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + (oh - 1) * sh + 1, sh)
            columns = slice(b * dw, b * dw + (ow - 1) * sw + 1, sw)
            yield (a, b), (slice(None), slice(None), rows, columns)


# Images per slice of a convolution: as many as keep one slice's im2col matrix within this many
# bytes, so the copy that writes it and the product that reads it stay in the core's L2 cache.
CONV_CHUNK_BYTES = 1 << 19


def empty(shape: tuple, dtype):
    """An output buffer that a kernel or a loop of kernels will fill completely."""
    return np.empty(shape, dtype=dtype)


def has_c_kernels(dtype) -> bool:
    """Whether the C kernels serve this dtype (float32/float64, where the compiler built them):
    every function below that has a C path asks this first."""
    return native.library(dtype) is not None


# The direct convolution here has its own backward (direct_conv2d_backward).
DIRECT_BACKWARD = True


def uses_direct_conv(window: Window, groups: int, out_channels: int, dtype) -> bool:
    """Where the C kernels are built: every stride-1, undilated, ungrouped float32/float64 layer
    (all of LeNet's and ResNet's 3x3 layers), and strided ones whose output channels fill the C
    code's vectors (ResNet's downsampling layers). Other strided, dilated and grouped layers take
    im2col and BLAS."""
    if groups != 1 or window.dilation != (1, 1) or window.n == 0 or not has_c_kernels(dtype):
        return False
    return window.stride == (1, 1) or native.takes_stride(out_channels, window.kw, dtype)


def direct_conv2d(x, weight, bias, window: Window, groups: int, activation: str | None):
    """x: (N, C, H, W), weight: (C_out, C, kH, kW) -> y (N, C_out, oH, oW) with bias and activation,
    by the C kernel (no im2col matrix), in x's dtype."""
    x, weight, bias = _contiguous_as(x.dtype, x, weight, bias)
    return native.conv_forward(x, weight, bias, window, relu=activation == "relu")


def direct_conv2d_backward(g, x, weight, y, window: Window, activation: str | None, needs_input_grad: tuple):
    """(gx, gw, gb) of `direct_conv2d` for its output gradient g (N, C_out, oH, oW), each None where
    not needed. x is the saved input (None when gw is not needed), y the saved output of a fused
    ReLU (None without one): g counts only where y > 0, applied as the kernels read g."""
    g, weight, x = _contiguous_as(g.dtype, g, weight, x)  # g has y's dtype: the one the forward pass ran in
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


# Below this many values NumPy's own addition is as fast as a call into the C kernels.
C_ADD_MIN_SIZE = 1 << 16


def add(a, b):
    """a + b: on two threads in the C kernels for large arrays of one shape and float dtype
    (residual connections, gradients meeting at one input), else NumPy's (any broadcast)."""
    if a.shape == b.shape and a.dtype == b.dtype and a.size >= C_ADD_MIN_SIZE and has_c_kernels(a.dtype):
        return native.add(np.ascontiguousarray(a), np.ascontiguousarray(b))
    return a + b


def fuses_momentum_step(param, grad, buffer) -> bool:
    """Whether momentum_step serves these arrays: the C kernels built for their dtype, one dtype
    and shape, C-contiguous (else SGD takes NumPy's in-place steps)."""
    same = param.dtype == grad.dtype == buffer.dtype and param.shape == grad.shape == buffer.shape
    return same and param.flags.c_contiguous and grad.flags.c_contiguous and has_c_kernels(param.dtype)


def momentum_step(param, grad, buffer, lr: float, momentum: float, dampening: float) -> None:
    """SGD's momentum update in one C pass, in place: buffer = momentum * buffer + (1 - dampening)
    * grad, then param -= lr * buffer."""
    native.momentum_step(param, grad, buffer, lr, momentum, dampening)


def relu(x):
    """max(x, 0) (NaN kept), one pass."""
    return native.relu_forward(np.ascontiguousarray(x)).reshape(x.shape)  # a 0-d array comes back 0-d


def relu_backward(g, y):
    """g where y > 0, else 0, one pass; g and y of one dtype."""
    return native.relu_backward(np.ascontiguousarray(g), np.ascontiguousarray(y)).reshape(g.shape)


def batch_norm_stats(x):
    """x (N, C, ...) -> (mean, var) per channel, (C,) each, biased variance."""
    return native.batch_norm_stats(np.ascontiguousarray(x))


def batch_norm_forward(x, mean, inv_std, weight, bias):
    """x (N, C, ...) -> y = (x - mean) * inv_std * weight + bias per channel (x_hat is not kept:
    batch_norm_backward recomputes it from x)."""
    x, mean, inv_std, weight, bias = _contiguous_as(x.dtype, x, mean, inv_std, weight, bias)
    return native.batch_norm_forward(x, mean, inv_std, weight, bias)


def batch_norm_backward(g, x, mean, inv_std, scale, training: bool, needs_input_grad: bool):
    """(gx or None, Σ g, Σ g * x_hat) per channel for y = x_hat * weight + bias, x_hat = (x - mean)
    * inv_std and scale = inv_std * weight: in training gx also carries the batch statistics'
    dependence on x."""
    g, x, mean, inv_std, scale = _contiguous_as(x.dtype, g, x, mean, inv_std, scale)
    sums = native.batch_norm_sums(g, x, mean, inv_std)
    if not needs_input_grad:
        return (None, *sums)
    return (native.batch_norm_input_grad(g, x, mean, inv_std, scale, sums if training else None), *sums)


def _contiguous_as(dtype, *arrays):
    """Each array C-contiguous in `dtype` (None stays None): what the C kernels read."""
    return tuple(None if a is None else np.ascontiguousarray(a, dtype=dtype) for a in arrays)


def conv_chunk_size(window: Window, itemsize: int) -> int:
    """How many images a convolution takes at a time: a cache-sized im2col matrix per slice."""
    per_image = window.c * window.kh * window.kw * window.oh * window.ow * itemsize
    return max(1, CONV_CHUNK_BYTES // per_image)


def im2col(x, window: Window):
    """x: (N, C, H, W) -> cols (C*kH*kW, N*oH*oW), channel-major: one row per (channel, kernel
    offset), read from contiguous image rows."""
    win = windows(pad2d(x, window.pads), window.kernel, window.stride, window.dilation, window.out_size)
    return win.transpose(1, 4, 5, 0, 2, 3).reshape(window.c * window.kh * window.kw, -1)


def col2im(cols, window: Window, out=None):
    """The adjoint of `im2col`: cols (C*kH*kW, N*oH*oW) -> (N, C, H, W), into `out` when given."""
    xp = get_array_module(cols)
    slabs = cols.reshape(window.c, window.kh, window.kw, window.n, window.oh, window.ow).transpose(1, 2, 0, 3, 4, 5)
    channel_major = (window.c, window.n) + window.padded_shape[2:]
    folded = fold_windows(slabs, channel_major, window.stride, window.dilation)
    if out is None:
        out = xp.empty((window.n, window.c, window.h, window.w), dtype=cols.dtype)
    out[...] = unpad2d(folded, window.pads).transpose(1, 0, 2, 3)
    return out


def conv_epilogue(cm, shape: tuple, bias, activation: str | None, out=None):
    """The product's channel-major output cm (C_out, N*oH*oW) -> y (N, C_out, oH, oW), plus
    bias (C_out,) and the activation (None or "relu"), into `out` (C-contiguous) when given, else
    a new array (cm is left as it was)."""
    xp = get_array_module(cm)
    n, channels, oh, ow = shape
    image_major = cm.reshape(channels, n, oh, ow).transpose(1, 0, 2, 3)
    y = xp.empty(shape, dtype=cm.dtype) if out is None else out
    if bias is None:
        y[...] = image_major
    else:
        xp.add(image_major, bias.reshape(1, channels, 1, 1), out=y)
    if activation == "relu":
        xp.maximum(y, 0, out=y)
    return y


def max_pool(x, window: Window):
    """x: (N, C, H, W) -> (y, argmax), both (N, C, oH, oW); argmax is the kernel offset a*kW + b
    of each window's first maximum (a NaN counts as the maximum).

    One pass per kernel offset over output-sized slabs: y is the running maximum, and a window's
    argmax is the number of leading offsets whose value is not its maximum. A NaN breaks that
    count (NaN != NaN), so an output with a NaN goes the slower way, an argmax over each window.
    The C kernel, where built, walks each window once with the same rule.
    """
    if _native_pool(window, x.dtype):
        return native.max_pool(np.ascontiguousarray(x), window)
    xp = get_array_module(x)
    slabs = _pool_slabs(pad2d(x, window.pads, -np.inf), window)
    y = slabs[0].copy()
    for slab in slabs[1:]:
        xp.maximum(y, slab, out=y)
    if xp.isnan(y).any():
        return _max_pool_by_windows(x, window)
    argmax = xp.zeros(y.shape, dtype=_offset_dtype(window))
    leading = xp.ones(y.shape, dtype=bool)
    for slab in slabs[:-1]:
        leading &= slab != y
        argmax += leading
    return y, argmax


def _max_pool_by_windows(x, window: Window):
    xp = get_array_module(x)
    win = windows(pad2d(x, window.pads, -np.inf), window.kernel, window.stride, (1, 1), window.out_size)
    flat = win.reshape(win.shape[:4] + (-1,))
    argmax = flat.argmax(axis=-1).astype(_offset_dtype(window))
    return xp.take_along_axis(flat, argmax[..., None].astype(np.intp), axis=-1)[..., 0], argmax


def _native_pool(window: Window, dtype) -> bool:
    """Whether the C max pooling takes this window: its argmax is a uint8 offset, as here."""
    return _offset_dtype(window) == np.uint8 and has_c_kernels(dtype)


def _offset_dtype(window: Window):
    return np.uint8 if window.kh * window.kw <= 256 else np.int32


def max_pool_backward(g, argmax, window: Window):
    """g, argmax: (N, C, oH, oW) -> (N, C, H, W): each window's gradient lands on its argmax."""
    if _native_pool(window, g.dtype):
        return native.max_pool_backward(np.ascontiguousarray(g), np.ascontiguousarray(argmax, dtype=np.uint8), window)
    return _unpool(g, window, lambda offset, out: get_array_module(g).multiply(g, argmax == offset, out=out))


def avg_pool(x, window: Window, count_include_pad: bool):
    """x: (N, C, H, W) -> (N, C, oH, oW), each window's sum over its divisor."""
    slabs = _pool_slabs(pad2d(x, window.pads), window)
    total = None
    for a in range(window.kh):  # each kernel row's sum first, then the rows: NumPy's order for a window sum
        row = slabs[a * window.kw].copy()
        for slab in slabs[a * window.kw + 1 : (a + 1) * window.kw]:
            row += slab
        total = row if total is None else total + row
    total /= avg_pool_divisor(window, count_include_pad, x.dtype)
    return total


def avg_pool_backward(g, window: Window, count_include_pad: bool):
    """g: (N, C, oH, oW) -> (N, C, H, W): every cell of a window gets its gradient over the divisor."""
    per_cell = g / avg_pool_divisor(window, count_include_pad, g.dtype)
    return _unpool(g, window, lambda offset, out: get_array_module(g).copyto(out, per_cell))


def avg_pool_divisor(window: Window, count_include_pad: bool, dtype) -> np.ndarray:
    """(oH, oW) cell counts: with count_include_pad every cell inside the padded input, else the
    real ones only; cells of a ceil-mode window past the padding never count (PyTorch's rule)."""
    counts = []
    for size, out, kernel, stride, pad in ((window.h, window.oh, window.kh, window.sh, window.pads[0]),
                                           (window.w, window.ow, window.kw, window.sw, window.pads[2])):
        starts = np.arange(out) * stride - pad
        ends = np.minimum(starts + kernel, size + pad)
        counts.append(ends - starts if count_include_pad else np.minimum(ends, size) - np.maximum(starts, 0))
    return np.outer(*counts).astype(dtype)


def _pool_slabs(padded, window: Window) -> list:
    """The kH*kW offset slabs (N, C, oH, oW) of a padded input, as views."""
    return [padded[where] for _, where in offset_slices(window.kernel, window.stride, (1, 1), window.out_size)]


def _unpool(g, window: Window, write_gradient):
    """(N, C, H, W) gradient of a pooling: write_gradient(a*kW + b, out) writes kernel offset
    (a, b)'s (N, C, oH, oW) share into `out`. When the windows tile the input exactly (stride =
    kernel, no padding, nothing left over) every cell has one window, and each share is written
    straight into its slab; otherwise it is added."""
    xp = get_array_module(g)
    tiles = window.stride == window.kernel and not any(window.pads) and \
        (window.oh * window.kh, window.ow * window.kw) == (window.h, window.w)
    gx = (xp.empty if tiles else xp.zeros)(window.padded_shape, dtype=g.dtype)
    share = None if tiles else xp.empty_like(g)
    for (a, b), where in offset_slices(window.kernel, window.stride, (1, 1), window.out_size):
        if tiles:
            write_gradient(a * window.kw + b, gx[where])
        else:
            write_gradient(a * window.kw + b, share)
            gx[where] += share
    return unpad2d(gx, window.pads)
