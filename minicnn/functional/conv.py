"""Convolution: the deep-learning layer (`conv2d`) and the textbook operations (`convolve`, `correlate`).

Deep learning's "convolution" is cross-correlation: the kernel slides over the input unflipped,
and each output is the sum of products under it (docs/en/tutorial.md §1). True convolution flips the kernel
first, (f * g)[m] = Σ_i f[m - i] g[i]; `convolve` does that, `correlate` does not.
"""

from __future__ import annotations

from minicnn.autograd import Function, Tensor
from minicnn.backend import device_of
from minicnn.functional.shape import getitem
from minicnn.functional.sizes import conv_output_size, pair
from minicnn.kernels import kernels_for
from minicnn.kernels.window import Window


class ConvolutionMemoryError(MemoryError):
    """A convolution ran out of memory (NumPy's or CuPy's MemoryError, chained): the message names
    the layer's shapes and what to change."""


class Conv2d(Function):
    """2-D cross-correlation of a batch of images with a bank of filters.

    x: (N, C_in, H, W), weight: (C_out, C_in/groups, kH, kW), bias: (C_out,) or None
    -> (N, C_out, oH, oW), oH = floor((H + top + bottom - dH*(kH-1) - 1) / sH) + 1, likewise oW.

    pads: (top, bottom, left, right) zeros around each image. activation: None or "relu",
    applied in the same pass that adds the bias (a fused epilogue).

    The device's kernel backend computes both passes (`conv2d`, `conv2d_backward`, see
    minicnn.kernels.reference): im2col and one BLAS product per group, the batch in slices sized
    by the device (cache-sized on the CPU, from free memory on the GPU); on the CPU the C kernels'
    direct convolution where they take the layer, on the GPU the direct kernel for layers with few
    input channels. The op keeps for backward the weight, the input when the weight needs a
    gradient, and the output of a fused ReLU; never an im2col matrix (25 times the input for
    LeNet's first layer), which backward rebuilds slice by slice.
    Running out of memory raises ConvolutionMemoryError, naming the shapes.
    """

    def __init__(self, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1, activation=None):
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups
        self.activation = activation

    def forward(self, x, weight, bias=None):
        try:
            return self._forward(x, weight, bias)
        except MemoryError as error:
            raise self._out_of_memory("forward", x.shape, weight.shape, x) from error

    def _forward(self, x, weight, bias):
        _, _, kh, kw = weight.shape
        oh = conv_output_size(x.shape[2], kh, self.stride[0], self.pads[0] + self.pads[1], self.dilation[0])
        ow = conv_output_size(x.shape[3], kw, self.stride[1], self.pads[2] + self.pads[3], self.dilation[1])
        window = self.window = Window.over(x.shape, (kh, kw), self.stride, self.dilation, self.pads, (oh, ow))
        y = kernels_for(x).conv2d(x, weight, bias, window, self.groups, self.activation)
        self.save_for_backward(weight, x if self.needs_input_grad[1] else None, y if self.activation else None)
        return y

    def backward(self, g):
        weight, x, y = self.saved
        window = self.window
        try:
            return kernels_for(g).conv2d_backward(g, x, weight, y, window, self.groups, self.activation,
                                                  self.needs_input_grad)
        except MemoryError as error:
            raise self._out_of_memory("backward", (window.n, window.c, window.h, window.w), weight.shape, g) from error

    def _out_of_memory(self, stage: str, x_shape, weight_shape, like) -> ConvolutionMemoryError:
        return ConvolutionMemoryError(
            f"conv2d: out of memory on {device_of(like)} in the {stage} pass of a layer with input "
            f"{tuple(x_shape)} {like.dtype} and weight {tuple(weight_shape)}: use a smaller batch than "
            f"{x_shape[0]} (or smaller images, or fewer channels)"
        )


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1, activation: str | None = None) -> Tensor:
    """Cross-correlate a batch of images with filters: the convolution layer.

    x: (N, C_in, H, W); weight: (C_out, C_in/groups, kH, kW); bias: (C_out,) or None.
    padding: an int, a pair (pH, pW), or
      'valid' (none: oH = H - kH + 1),
      'same'  (stride 1 only; output keeps H×W; an odd total goes one more to the bottom/right),
      'full'  (dilation*(k-1) on every side: oH = H + kH - 1).
    activation: None, or "relu" to apply ReLU in the pass that adds the bias (one pass over the
      output instead of two; the same values as relu(conv2d(...))).
    Returns (N, C_out, oH, oW) with oH = floor((H + 2*pH - dilation*(kH-1) - 1) / stride) + 1.
    """
    if activation not in (None, "relu"):
        raise ValueError(f"conv2d: activation must be None or 'relu', got {activation!r}")
    stride, dilation = pair(stride, "conv2d stride"), pair(dilation, "conv2d dilation")
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(f"conv2d: stride {stride} and dilation {dilation} must be at least 1")
    _check_conv_shapes(x, weight, bias, groups)
    kernel = tuple(weight.shape[2:])
    pads = conv_padding(padding, kernel, stride, dilation)
    for axis, (size, k, s, d, total) in enumerate(
        zip(x.shape[2:], kernel, stride, dilation, (pads[0] + pads[1], pads[2] + pads[3]))
    ):
        if conv_output_size(size, k, s, total, d) < 1:
            raise ValueError(
                f"conv2d: kernel {kernel[0]}x{kernel[1]} (dilation {dilation}) is larger than the padded "
                f"input {tuple(x.shape[2:])} + padding {pads}: use a smaller kernel or more padding"
            )
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, pads, dilation, groups, activation)(*inputs)


def _check_conv_shapes(x, weight, bias, groups) -> None:
    if x.ndim != 4:
        hint = "; for one image add a batch axis: x.reshape(1, *x.shape)" if x.ndim == 3 else ""
        raise ValueError(f"conv2d: input must be (N, C, H, W), got shape {tuple(x.shape)}{hint}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be (C_out, C_in/groups, kH, kW), got shape {tuple(weight.shape)}")
    if groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"conv2d: groups={groups} must be positive and divide C_out={weight.shape[0]}")
    if x.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f"conv2d: input has {x.shape[1]} channels (shape {tuple(x.shape)}) but weight "
            f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")


def conv_padding(padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """Resolve a padding spec into (top, bottom, left, right)."""
    if isinstance(padding, str):
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "full":
            return (totals[0], totals[0], totals[1], totals[1])
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"conv2d: padding='same' needs stride 1, got {stride}; give the padding as numbers")
            return (totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, totals[1] - totals[1] // 2)
        raise ValueError(f"conv2d: padding must be an int, a pair, 'valid', 'same' or 'full', got {padding!r}")
    ph, pw = pair(padding, "conv2d padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d: padding must be non-negative, got {padding}")
    return (ph, ph, pw, pw)


def correlate(x, k, mode: str = "full") -> Tensor:
    """Slide `k` over `x` without flipping it: out[m] = Σ_i x[m + i] k[i] (cross-correlation).

    1-D arrays follow numpy.correlate, 2-D arrays scipy.signal.correlate2d:
    'full' (every overlap: M + K - 1), 'valid' (full overlaps only: |M - K| + 1),
    'same' (1-D: max(M, K) values; 2-D: x's shape; centred on 'full').
    """
    return _sliding_product(x, k, mode, flipped=False)


def convolve(x, k, mode: str = "full") -> Tensor:
    """True convolution: flip `k`, then slide it: out[m] = Σ_i x[m - i] k[i] (docs/en/tutorial.md §1).

    1-D arrays follow numpy.convolve, 2-D arrays scipy.signal.convolve2d; modes as in `correlate`.
    The tutorial's example (docs/en/tutorial.md §1): convolve([0, 1, 2, -1, 3], [1, 1, 0], 'valid') = [3, 1, 2].
    """
    return _sliding_product(x, k, mode, flipped=True)


def _sliding_product(x, k, mode, flipped: bool) -> Tensor:
    name = "convolve" if flipped else "correlate"
    if x.ndim != k.ndim or x.ndim not in (1, 2):
        raise ValueError(f"{name}: needs two 1-D or two 2-D arrays, got shapes {tuple(x.shape)} and {tuple(k.shape)}")
    if mode not in ("full", "valid", "same"):
        raise ValueError(f"{name}: mode must be 'full', 'valid' or 'same', got {mode!r}")
    if mode == "valid" and x.ndim == 2:
        x_covers_k = all(m >= n for m, n in zip(x.shape, k.shape))
        k_covers_x = all(m <= n for m, n in zip(x.shape, k.shape))
        if not (x_covers_k or k_covers_x):
            raise ValueError(
                f"{name}: mode 'valid' needs one array at least as large as the other in every "
                f"dimension, got {tuple(x.shape)} and {tuple(k.shape)}"
            )
    pads = []
    for m, n in zip(x.shape, k.shape):
        start, length = _mode_window(m, n, mode, one_d=x.ndim == 1, flipped=flipped)
        pads += [n - 1 - start, start + length - m]
    if x.ndim == 1:
        pads = [0, 0] + pads
    if flipped:
        k = getitem(k, (slice(None, None, -1),) * k.ndim)
    x4 = x.reshape((1, 1) + (1,) * (2 - x.ndim) + tuple(x.shape))
    k4 = k.reshape((1, 1) + (1,) * (2 - k.ndim) + tuple(k.shape))
    y = Conv2d(pads=tuple(pads))(x4, k4)
    return y.reshape(y.shape[4 - x.ndim :])


def _mode_window(m: int, n: int, mode: str, one_d: bool, flipped: bool) -> tuple[int, int]:
    """Where the requested mode sits in the 'full' result along one axis: (start, length)."""
    if mode == "full":
        return 0, m + n - 1
    if mode == "valid":
        return min(m, n) - 1, abs(m - n) + 1
    if one_d:  # numpy: the longer length; numpy.correlate with a longer kernel reverses a swapped
        # correlation, which moves its centre to the other side
        return (m // 2 if n > m and not flipped else (min(m, n) - 1) // 2), max(m, n)
    return ((n - 1) // 2 if flipped else n // 2), m  # scipy: x's size; correlate centres one later
