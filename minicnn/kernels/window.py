"""The geometry of a sliding window over a batch of images, as every kernel module takes it.

One `Window` describes a convolution or a pooling: which input, which kernel, where each window
starts and how many there are. The CPU kernels read it in Python; the CUDA kernels receive it as
the fourteen ints of `Window2d` (cuda/window.cuh) through `Window.kernel_args()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """Input (n, c, h, w); kernel (kh, kw), stride (sh, sw), dilation (dh, dw);
    pads (top, bottom, left, right); output (oh, ow) windows per image.

    Window (i, j) reads rows i*sh - top + a*dh and columns j*sw - left + b*dw, a < kh, b < kw.
    The bottom and right pads only matter to the CPU's padded copy (a ceil-mode pooling window
    may overhang the input by more than the padding); the CUDA kernels bound-check instead.
    """

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pads: tuple[int, int, int, int]
    oh: int
    ow: int

    @classmethod
    def over(cls, shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple, out_size: tuple) -> Window:
        """The window over an input of `shape` (N, C, H, W)."""
        return cls(*(int(s) for s in shape), *kernel, *stride, *dilation, tuple(pads), *out_size)

    def with_batch(self, n: int) -> Window:
        """The same windows over n images (a slice of the batch)."""
        return Window(n, self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw, self.dh, self.dw, self.pads,
                      self.oh, self.ow)

    @property
    def kernel(self) -> tuple[int, int]:
        return (self.kh, self.kw)

    @property
    def stride(self) -> tuple[int, int]:
        return (self.sh, self.sw)

    @property
    def dilation(self) -> tuple[int, int]:
        return (self.dh, self.dw)

    @property
    def out_size(self) -> tuple[int, int]:
        return (self.oh, self.ow)

    @property
    def padded_shape(self) -> tuple[int, int, int, int]:
        """(N, C, H + top + bottom, W + left + right)."""
        top, bottom, left, right = self.pads
        return (self.n, self.c, self.h + top + bottom, self.w + left + right)

    def kernel_args(self) -> tuple:
        """The CUDA kernels' WINDOW_PARAMS, in order, as the int32 scalars CuPy passes as C ints."""
        values = (self.n, self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw, self.dh, self.dw,
                  self.pads[0], self.pads[2], self.oh, self.ow)
        return tuple(np.int32(v) for v in values)
