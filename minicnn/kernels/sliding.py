"""Sliding windows over the last two axes of (N, C, H, W) arrays as views, written once over the
array module (NumPy or CuPy): padding, the window view, its adjoint and the kernel-offset slabs
that the reference kernels (minicnn.kernels.reference) are built from.

`windows` is im2col without the copy: a strided view that shows every kH×kW window of every
image at once. Convolution copies it once into a matrix for one BLAS product; pooling reduces over
its last two axes. `fold_windows` is the way back (each input element collects the gradient of
every window it sits in); it loops over the kH·kW kernel offsets, never over positions or images.
"""

from __future__ import annotations

from minicnn.backend import get_array_module


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
