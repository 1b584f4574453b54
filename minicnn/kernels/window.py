"""The geometry of a sliding window over a batch of images, as every kernel module takes it.

One `Window` describes a convolution or a pooling: which input, which kernel, where each window
starts and how many there are. The NumPy kernels read it in Python; the compiled ones, C and CUDA
alike, take it as one struct, `Window2d` (window.h, next to this file), by value. STRUCT_FIELDS
mirrors that struct here, once: the ctypes struct and the NumPy dtype are made from it, and
tests/kernels/test_signatures.py checks it against the header.
"""

from __future__ import annotations

import ctypes
import functools
import operator
import struct
from dataclasses import dataclass

import numpy as np

# Window2d's fields in window.h's order, each a C int (32 bits): Window attributes of these names.
STRUCT_FIELDS = ("n", "c", "h", "w", "kh", "kw", "sh", "sw", "dh", "dw", "pad_top", "pad_left", "oh", "ow")
STRUCT_DTYPE = np.dtype([(name, np.intc) for name in STRUCT_FIELDS])
_packing = struct.Struct("=" + "i" * len(STRUCT_FIELDS))  # ints only: no padding between them
_struct_values = operator.attrgetter(*STRUCT_FIELDS)


class Window2d(ctypes.Structure):
    """window.h's struct, as ctypes passes it to a C kernel by value."""

    _fields_ = [(name, ctypes.c_int) for name in STRUCT_FIELDS]


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

    @staticmethod
    def over(shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple, out_size: tuple) -> Window:
        """The window over an input of `shape` (N, C, H, W). One Window per geometry is kept, so
        a layer called batch after batch packs its struct once, not once per call."""
        return _window_over(tuple(shape), tuple(kernel), tuple(stride), tuple(dilation), tuple(pads), tuple(out_size))

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

    @property
    def pad_top(self) -> int:
        return self.pads[0]

    @property
    def pad_left(self) -> int:
        return self.pads[2]

    @functools.cached_property
    def _as_parameter_(self) -> Window2d:
        """This window as window.h's struct, made on first use and kept: ctypes reads this attribute
        (its protocol) when a Window is passed to a C kernel's `window` argument."""
        try:
            packed = _packing.pack(*_struct_values(self))
        except struct.error:
            raise ValueError(f"minicnn: {self} has a size beyond the compiled kernels' 32-bit ints (Window2d in "
                             "minicnn/kernels/window.h): split the batch or the image") from None
        return Window2d.from_buffer_copy(packed)

    @functools.cached_property
    def struct_array(self) -> np.ndarray:
        """The same struct as a one-element array of STRUCT_DTYPE (a view of the same bytes): CuPy
        passes a one-element NumPy array to a kernel by value, as a struct of its dtype's layout."""
        return np.frombuffer(self._as_parameter_, STRUCT_DTYPE)


@functools.lru_cache(maxsize=1024)
def _window_over(shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple, out_size: tuple) -> Window:
    return Window(*(int(s) for s in shape), *(int(k) for k in kernel), *(int(s) for s in stride),
                  *(int(d) for d in dilation), tuple(int(p) for p in pads), *(int(o) for o in out_size))
