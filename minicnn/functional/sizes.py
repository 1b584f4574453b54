"""Output-size arithmetic shared by convolution and pooling (the formulas PyTorch uses)."""

from __future__ import annotations

import numbers


def pair(value, name: str = "value") -> tuple[int, int]:
    """An int (Python's or NumPy's) or a pair of ints as (height, width)."""
    if type(value) is int:  # the usual cases first: the ABC checks below cost a microsecond each
        return (value, value)
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value
    if isinstance(value, numbers.Integral):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, numbers.Integral) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """floor((size + pad_total - dilation*(kernel-1) - 1) / stride) + 1: windows that fit entirely."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Like conv_output_size with both sides padded; ceil_mode also keeps a last, partial window,
    provided it starts inside the input or its left padding (never only in the right padding)."""
    span = size + 2 * padding - (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out
