"""The reference kernel backend: every kernel of the interface, written once over an array module.

A kernel backend is what an op asks to compute its arrays (no autograd here: arrays in, arrays out,
each taking a `Window`, minicnn.kernels.window, for its geometry). `ReferenceBackend(xp)` writes
every kernel with the array expressions of `xp`, NumPy or CuPy: convolution as im2col and one BLAS
product per slice of the batch, pooling over offset slabs, batch norm and ReLU as array expressions.
The CPU backend (minicnn.kernels.cpu) and the CUDA backend (minicnn.kernels.cuda) derive from it
and override the kernels their own C or CUDA code does better; whatever they do not override is
this code. The public methods of this class are the interface: tests/kernels/test_backends.py runs
every one of them on every backend against ReferenceBackend(numpy).
"""

from __future__ import annotations

import numpy as np

from minicnn.backend import get_array_module
from minicnn.kernels.sliding import fold_windows, offset_slices, pad2d, unpad2d, windows
from minicnn.kernels.window import Window

# Images per slice of a convolution: as many as keep one slice's im2col matrix within this many
# bytes, so the copy that writes it and the product that reads it stay in the core's L2 cache.
CONV_CHUNK_BYTES = 1 << 19


class ReferenceBackend:
    """Every kernel of the interface over the array module `xp` (numpy or cupy).

    Shapes: x (N, C, H, W) images, weight (C_out, C/groups, kH, kW), `window` the Window over x;
    y (N, C_out, oH, oW) for a convolution, (N, C, oH, oW) for a pooling; g is the gradient of
    an op's output, shaped like it. Outputs are new arrays unless an `out` is given.
    """

    def __init__(self, xp=np):
        self.xp = xp

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.xp.__name__})"

    # -- buffers and slices --------------------------------------------------------------------

    def empty(self, shape: tuple, dtype):
        """An output buffer that a kernel or a loop of kernels will fill completely."""
        return self.xp.empty(shape, dtype=dtype)

    def conv_chunk_size(self, window: Window, itemsize: int) -> int:
        """How many images a convolution takes at a time: a cache-sized im2col matrix per slice,
        (C*kH*kW, n*oH*oW) within CONV_CHUNK_BYTES, and at least one (an empty batch included)."""
        per_image = window.c * window.kh * window.kw * window.oh * window.ow * itemsize
        return max(1, CONV_CHUNK_BYTES // per_image)

    # -- convolution ---------------------------------------------------------------------------

    def conv2d(self, x, weight, bias, window: Window, groups: int, activation: str | None):
        """x: (N, C, H, W), weight: (C_out, C/groups, kH, kW), bias: (C_out,) or None
        -> y: (N, C_out, oH, oW) in x's dtype, with bias and activation (None or "relu").

        In slices of `conv_chunk_size` images: each slice's im2col matrix (groups,
        C/groups*kH*kW, n*oH*oW), one product per group with the filters (groups, C_out/groups,
        C/groups*kH*kW), and the epilogue that lays the channel-major product out as images.
        """
        xp = self.xp
        y = self.empty((window.n, weight.shape[0], window.oh, window.ow), x.dtype)
        filters = _filters(weight, groups)
        for images, part in self._slices(window, x.dtype.itemsize):
            product = xp.matmul(filters, self._cols(x[images], part, groups))
            self.conv_epilogue(product, y[images].shape, bias, activation, out=y[images])
        return y

    def conv2d_backward(self, g, x, weight, y, window: Window, groups: int, activation: str | None,
                        needs_input_grad: tuple):
        """(gx, gw, gb) of `conv2d` for its output gradient g (N, C_out, oH, oW), each None where
        needs_input_grad (for x, weight and, when it has three entries, bias) says so. x is the
        saved input (None when gw is not needed); y the saved output when activation is "relu"
        (g counts only where y > 0), else None.

        gw = g @ cols^T slice by slice, each slice's im2col matrix rebuilt from x rather than kept
        from the forward pass (for LeNet's first layer it is 25 times the input); gx = filters^T @
        g folded back onto the images by col2im.
        """
        xp = self.xp
        filters = _filters(weight, groups)
        if activation == "relu":
            g = xp.where(y > 0, g, 0)  # as ReLU's backward: 0 where y <= 0, even for an infinite g
        g_rows = g.transpose(1, 0, 2, 3).reshape(filters.shape[:2] + (-1,))
        gx = gw = gb = None
        if needs_input_grad[0]:
            gx = self._conv_input_grad(filters, g_rows, window)
        if needs_input_grad[1]:
            gw = xp.zeros(filters.shape, dtype=g.dtype)
            for images, part in self._slices(window, g.dtype.itemsize):
                gw += self._conv_weight_grad(image_columns(g_rows, images, window), self._cols(x[images], part, groups))
            gw = gw.reshape(weight.shape)
        if len(needs_input_grad) > 2 and needs_input_grad[2]:
            gb = g_rows.sum(axis=2).reshape(-1)
        return gx, gw, gb

    def _slices(self, window: Window, itemsize: int):
        """(slice of the batch, its Window) for each slice of `conv_chunk_size` images."""
        step = self.conv_chunk_size(window, itemsize)
        for start in range(0, window.n, step):
            stop = min(start + step, window.n)
            yield slice(start, stop), window.with_batch(stop - start)

    def _cols(self, x, part: Window, groups: int):
        """The im2col matrix of a slice of images, (groups, C/groups*kH*kW, n*oH*oW)."""
        return self.im2col(x, part).reshape(groups, -1, part.n * part.oh * part.ow)

    def _conv_input_grad(self, filters, g_rows, window: Window):
        """filters^T @ g_rows, (groups, C/groups*kH*kW, N*oH*oW), folded onto the images by col2im:
        (N, C, H, W). The whole batch at once: col2im's loop over kernel offsets costs the same for
        a slice as for the batch."""
        return self.col2im(self.xp.matmul(filters.transpose(0, 2, 1), g_rows), window)

    def _conv_weight_grad(self, g_part, cols):
        """g_part (groups, C_out/groups, n*oH*oW) @ cols^T -> (groups, C_out/groups, C/groups*kH*kW);
        NumPy hands cols^T, a transposed view, straight to BLAS."""
        return self.xp.matmul(g_part, cols.transpose(0, 2, 1))

    def im2col(self, x, window: Window):
        """x: (N, C, H, W) -> cols (C*kH*kW, N*oH*oW), channel-major: one row per (channel, kernel
        offset), read from contiguous image rows; padding reads as zeros."""
        win = windows(pad2d(x, window.pads), window.kernel, window.stride, window.dilation, window.out_size)
        return win.transpose(1, 4, 5, 0, 2, 3).reshape(window.c * window.kh * window.kw, -1)

    def col2im(self, cols, window: Window, out=None):
        """The adjoint of `im2col`: cols (C*kH*kW, N*oH*oW) -> (N, C, H, W), into `out`
        (C-contiguous) when given."""
        slabs = cols.reshape(window.c, window.kh, window.kw, window.n, window.oh, window.ow).transpose(1, 2, 0, 3, 4, 5)
        channel_major = (window.c, window.n) + window.padded_shape[2:]
        folded = fold_windows(slabs, channel_major, window.stride, window.dilation)
        if out is None:
            out = self.xp.empty((window.n, window.c, window.h, window.w), dtype=cols.dtype)
        out[...] = unpad2d(folded, window.pads).transpose(1, 0, 2, 3)
        return out

    def conv_epilogue(self, cm, shape: tuple, bias, activation: str | None, out=None):
        """The product's channel-major output cm (C_out, N*oH*oW) -> y (N, C_out, oH, oW), plus
        bias (C_out,) and the activation (None or "relu"), into `out` (C-contiguous) when given,
        else a new array (cm is left as it was)."""
        xp = self.xp
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

    # -- pooling -------------------------------------------------------------------------------

    def max_pool(self, x, window: Window):
        """x: (N, C, H, W) -> (y, argmax), both (N, C, oH, oW); argmax is the kernel offset a*kW + b
        of each window's first maximum (a NaN counts as the maximum), uint8 where kH*kW <= 256.

        One pass per kernel offset over output-sized slabs: y is the running maximum, and a window's
        argmax is the number of leading offsets whose value is not its maximum. A NaN breaks that
        count (NaN != NaN), so an output with a NaN goes the slower way, an argmax over each window.
        """
        xp = self.xp
        slabs = _pool_slabs(pad2d(x, window.pads, -np.inf), window)
        y = slabs[0].copy()
        for slab in slabs[1:]:
            xp.maximum(y, slab, out=y)
        if xp.isnan(y).any():
            return _max_pool_by_windows(x, window)
        argmax = xp.zeros(y.shape, dtype=argmax_dtype(window))
        leading = xp.ones(y.shape, dtype=bool)
        for slab in slabs[:-1]:
            leading &= slab != y
            argmax += leading
        return y, argmax

    def max_pool_backward(self, g, argmax, window: Window):
        """g, argmax: (N, C, oH, oW) -> (N, C, H, W): each window's gradient lands on its argmax."""
        return _unpool(g, window, lambda offset, out: self.xp.multiply(g, argmax == offset, out=out))

    def avg_pool(self, x, window: Window, count_include_pad: bool):
        """x: (N, C, H, W) -> (N, C, oH, oW), each window's sum over its divisor (avg_pool_divisor)."""
        slabs = _pool_slabs(pad2d(x, window.pads), window)
        total = None
        for a in range(window.kh):  # each kernel row's sum first, then the rows: NumPy's order for a window sum
            row = slabs[a * window.kw].copy()
            for slab in slabs[a * window.kw + 1 : (a + 1) * window.kw]:
                row += slab
            total = row if total is None else total + row
        total /= self.xp.asarray(avg_pool_divisor(window, count_include_pad, x.dtype))
        return total

    def avg_pool_backward(self, g, window: Window, count_include_pad: bool):
        """g: (N, C, oH, oW) -> (N, C, H, W): every cell of a window gets its gradient over the divisor."""
        per_cell = g / self.xp.asarray(avg_pool_divisor(window, count_include_pad, g.dtype))
        return _unpool(g, window, lambda offset, out: self.xp.copyto(out, per_cell))

    # -- element-wise --------------------------------------------------------------------------

    def add(self, a, b):
        """a + b, for any shapes that broadcast."""
        return a + b

    def relu(self, x):
        """max(x, 0), any shape (NaN kept)."""
        return self.xp.maximum(x, 0)

    def relu_backward(self, g, y):
        """g where y > 0, else 0 (even where g is inf or NaN); g and y of one shape."""
        return self.xp.where(y > 0, g, 0)

    def momentum_step(self, param, grad, buffer, lr: float, momentum: float, dampening: float,
                      nesterov: bool = False) -> None:
        """SGD's momentum update, in place, for param, grad and buffer of one shape: buffer =
        momentum * buffer + (1 - dampening) * grad, then param -= lr * buffer (Nesterov: param -=
        lr * (grad + momentum * buffer))."""
        buffer *= momentum
        buffer += (1 - dampening) * grad if dampening else grad
        param -= lr * (grad + momentum * buffer if nesterov else buffer)

    # -- batch normalisation -------------------------------------------------------------------

    def batch_norm_forward(self, x, weight, bias, eps: float, stats: tuple | None = None):
        """x: (N, C, ...), weight and bias (C,) or None -> (y, (mean, var), saved).

        y = (x - mean) * inv_std * weight + bias per channel, inv_std = 1 / sqrt(var + eps).
        stats None (training): mean and var (biased) are this batch's, returned for the running
        statistics; else stats = (mean, var), each (C,) in x's dtype (evaluation).
        saved = (x, mean, inv_std, weight) for `batch_norm_backward`; here x is already normalised
        (x_hat) and mean is None, which saves the backward pass a recomputation.
        """
        xp = self.xp
        shape = _channel_shape(x)
        if stats is None:
            x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, positions): reductions run along rows
            n = x3.shape[0] * x3.shape[2]
            mean = x3.sum(axis=2).sum(axis=0) / n
            centred = x - mean.reshape(shape)
            var = _channel_dot(xp, centred, centred) / n
        else:
            mean, var = stats
            centred = x - mean.reshape(shape)
        inv_std = inverse_std(xp, var, eps, x.dtype)
        x_hat = centred
        x_hat *= inv_std.reshape(shape)
        y = x_hat * weight.reshape(shape) if weight is not None else x_hat.copy()
        if bias is not None:
            y += bias.reshape(shape)
        return y, (mean, var), (x_hat, None, inv_std, weight)

    def batch_norm_backward(self, g, x, mean, inv_std, weight, training: bool, needs_input_grad: bool):
        """(gx or None, Σ g, Σ g * x_hat) per channel, each sum (C,), for g (N, C, ...) and the
        forward pass's saved (x, mean, inv_std, weight): x the input, or x_hat when mean is None.

        With scale = inv_std * weight: gx = scale * (g - mean(g) - x_hat * mean(g * x_hat)) in
        training (the batch statistics depend on x), scale * g in evaluation; Σ g and Σ g * x_hat
        are the bias and weight gradients.
        """
        xp = self.xp
        shape = _channel_shape(g)
        x_hat = x if mean is None else (x - mean.reshape(shape)) * inv_std.reshape(shape)
        scale = inv_std if weight is None else inv_std * weight
        g3 = g.reshape(g.shape[0], g.shape[1], -1)
        n = g3.shape[0] * g3.shape[2]
        g_sum = g3.sum(axis=2).sum(axis=0)
        g_dot_x_hat = _channel_dot(xp, g, x_hat)
        gx = None
        if needs_input_grad:
            if training:
                gx = x_hat * (-g_dot_x_hat / n).reshape(shape)
                gx += g
                gx -= (g_sum / n).reshape(shape)
                gx *= scale.reshape(shape)
            else:
                gx = g * scale.reshape(shape)
        return gx, g_sum, g_dot_x_hat


def inverse_std(xp, var, eps: float, dtype):
    """1 / sqrt(var + eps) in `dtype` (batch norm's inv_std, the same on every backend)."""
    return (1.0 / xp.sqrt(var + eps)).astype(dtype)


def _channel_shape(x) -> tuple:
    """(1, -1, 1, ...): a (C,) array broadcast along the channel axis of x (N, C, ...)."""
    return (1, -1) + (1,) * (x.ndim - 2)


def _channel_dot(xp, a, b):
    """Σ a*b per channel over every other axis, for a, b: (N, C, ...) -> (C,), without a temporary."""
    return xp.einsum("nci,nci->c", a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1))


def _filters(weight, groups: int):
    """weight (C_out, C/groups, kH, kW) -> (groups, C_out/groups, C/groups*kH*kW)."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


def image_columns(rows, images: slice, window: Window):
    """The columns of a channel-major (groups, rows, N*oH*oW) matrix that belong to `images`."""
    per_image = window.oh * window.ow
    return rows[:, :, images.start * per_image : images.stop * per_image]


def _max_pool_by_windows(x, window: Window):
    xp = get_array_module(x)
    win = windows(pad2d(x, window.pads, -np.inf), window.kernel, window.stride, (1, 1), window.out_size)
    flat = win.reshape(win.shape[:4] + (-1,))
    argmax = flat.argmax(axis=-1).astype(argmax_dtype(window))
    return xp.take_along_axis(flat, argmax[..., None].astype(np.intp), axis=-1)[..., 0], argmax


def argmax_dtype(window: Window):
    """The dtype of a max pooling's argmax: uint8 where every kernel offset fits in it."""
    return np.uint8 if window.kh * window.kw <= 256 else np.int32


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
