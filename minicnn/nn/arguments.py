"""Checks on the arguments a layer is built with, so a bad value is refused before any work starts.

A layer built from a model spec gets whatever the TOML file says (`out_channels = 6.5`,
`in_channels = "one"`, `kernel_size = 0`). Unchecked, such a value fails later and far away: a
string-formatting error, a division by zero in the initialiser, a shape error at the first forward
pass. Each built-in layer passes its arguments through these one-liners instead, and a refusal names
the layer, the argument, the value and what is expected:

    Conv2d: out_channels must be a positive integer, got 6.5

A value of the wrong kind raises TypeError, one of the right kind but out of range ValueError.
What PyTorch accepts is accepted: NumPy integers and floats count as numbers, a size may be one
integer or a pair (tuple, list or array). A bool is never a count, and a string never a flag (a TOML
`bias = "false"` would otherwise be true). Each check returns the value as the layer keeps it:
Python ints and floats, pairs as tuples. `layer` is the module being built; its class names it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def integer(layer, name: str, value) -> int:
    """Any integer, e.g. a dimension index, where a negative one counts from the end."""
    if not _is_integer(value):
        raise _refusal(TypeError, layer, name, value, "an integer")
    return int(value)


def positive_int(layer, name: str, value) -> int:
    """A count or a size: 1, 2, ..."""
    if not _is_integer(value):
        raise _refusal(TypeError, layer, name, value, "a positive integer")
    if value < 1:
        raise _refusal(ValueError, layer, name, value, "a positive integer")
    return int(value)


def positive_pair(layer, name: str, value, none_allowed: bool = False) -> tuple:
    """A window size, stride or dilation: one positive integer for both sides, or (height, width).
    none_allowed: None may stand for a side (an adaptive pooling side that keeps the input's size)."""
    expected = "a positive integer or a pair of them" + (" (None keeps that side)" if none_allowed else "")
    return _pair(layer, name, value, 1, expected, none_allowed)


def padding(layer, name: str, value, modes: tuple[str, ...] = ()) -> tuple[int, int] | str:
    """Zeros added on each side: a non-negative integer or a (height, width) pair, or one of `modes`
    (convolution's 'valid', 'same', 'full'), returned as given."""
    expected = "a non-negative integer or a pair of them"
    if modes:
        expected += f", or one of {', '.join(map(repr, modes))}"
    if isinstance(value, str):
        if value in modes:
            return value
        raise _refusal(ValueError if modes else TypeError, layer, name, value, expected)
    return _pair(layer, name, value, 0, expected)


def fraction(layer, name: str, value) -> float:
    """A number from 0 to 1: a probability (dropout's p) or a mixing weight (batch norm's momentum)."""
    if not _is_real(value):
        raise _refusal(TypeError, layer, name, value, "a number between 0 and 1")
    if not 0 <= value <= 1:
        raise _refusal(ValueError, layer, name, value, "a number between 0 and 1")
    return float(value)


def positive_number(layer, name: str, value) -> float:
    """A strictly positive finite number, such as the eps that keeps a division away from zero."""
    if not _is_real(value):
        raise _refusal(TypeError, layer, name, value, "a positive number")
    if not 0 < value < math.inf:
        raise _refusal(ValueError, layer, name, value, "a positive number")
    return float(value)


def number(layer, name: str, value) -> float:
    """Any finite number, such as local response normalisation's alpha, beta and k."""
    if not _is_real(value):
        raise _refusal(TypeError, layer, name, value, "a number")
    if not math.isfinite(value):
        raise _refusal(ValueError, layer, name, value, "a finite number")
    return float(value)


def flag(layer, name: str, value) -> bool:
    """True or False (NumPy's bools and the integers 0 and 1 too, as Python's `if` takes them)."""
    if isinstance(value, (bool, np.bool_)) or (_is_integer(value) and value in (0, 1)):
        return bool(value)
    raise _refusal(TypeError, layer, name, value, "true or false")


def _pair(layer, name: str, value, minimum: int, expected: str, none_allowed: bool = False) -> tuple:
    listed = isinstance(value, (tuple, list)) or (isinstance(value, np.ndarray) and value.ndim == 1)
    sides = tuple(value) if listed else (value, value)
    if len(sides) != 2 or not all(_is_integer(v) or (none_allowed and v is None) for v in sides):
        raise _refusal(TypeError, layer, name, value, expected)
    if any(v is not None and v < minimum for v in sides):
        raise _refusal(ValueError, layer, name, value, expected)
    return tuple(None if v is None else int(v) for v in sides)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _refusal(kind: type[Exception], layer, name: str, value, expected: str) -> Exception:
    shown = value.item() if isinstance(value, np.generic) else value
    return kind(f"{type(layer).__name__}: {name} must be {expected}, got {shown!r}")
