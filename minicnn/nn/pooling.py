"""Pooling layers: no parameters, only a window rule (seed: the "summary master").

MaxPool2d and AvgPool2d keep their sizes as given, once checked, as PyTorch does
(`MaxPool2d(2).kernel_size == 2`); AdaptiveAvgPool2d keeps its output size as a pair.
"""

from __future__ import annotations

from minicnn import functional as F
from minicnn.nn import arguments
from minicnn.nn.module import Module


def _check_window(layer, kernel_size, stride, padding) -> None:
    """Refuse a window that cannot work: sizes that are not positive, or padding over half the
    kernel (a window could then hold padding only)."""
    kernel = arguments.positive_pair(layer, "kernel_size", kernel_size)
    if stride is not None:
        arguments.positive_pair(layer, "stride", stride)
    pads = arguments.padding(layer, "padding", padding)
    if any(2 * p > k for p, k in zip(pads, kernel)):
        raise ValueError(
            f"{type(layer).__name__}: padding must be at most half of kernel_size, got padding={padding!r} "
            f"and kernel_size={kernel_size!r}"
        )


class MaxPool2d(Module):
    """Largest value per window. x: (N, C, H, W) -> (N, C, oH, oW); stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False):
        super().__init__()
        _check_window(self, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = arguments.flag(self, "ceil_mode", ceil_mode)

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}, ceil_mode={self.ceil_mode}"


class AvgPool2d(Module):
    """Mean per window. x: (N, C, H, W) -> (N, C, oH, oW); stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        _check_window(self, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = arguments.flag(self, "ceil_mode", ceil_mode)
        self.count_include_pad = arguments.flag(self, "count_include_pad", count_include_pad)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average into a fixed (oH, oW) grid whatever the input size. x: (N, C, H, W) -> (N, C, oH, oW)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = arguments.positive_pair(self, "output_size", output_size, none_allowed=True)

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
