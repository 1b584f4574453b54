"""Weight initialisation, in place on a Tensor's array; PyTorch's formulas and defaults.

Draws come from the CPU generator that `mc.manual_seed` seeds (then move to the tensor's device),
so a seeded model starts from the same weights on any device.
"""

from __future__ import annotations

import math

import numpy as np

from minicnn import backend


def _fill(tensor, values: np.ndarray):
    xp = backend.get_array_module(tensor.data)
    tensor.data[...] = xp.asarray(values.astype(tensor.dtype))
    return tensor


def fan_in_and_fan_out(tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in, *kernel): in*prod(kernel) and out*prod(kernel)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in/out needs a weight with at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    return _fill(tensor, backend.random_generator("cpu").uniform(a, b, tensor.shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    return _fill(tensor, backend.random_generator("cpu").normal(mean, std, tensor.shape))


def constant_(tensor, val: float):
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def _gain(nonlinearity: str, a: float) -> float:
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity in ("linear", "sigmoid", "conv2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He et al. 2015: U(-b, b), b = gain * sqrt(3 / fan). With a=sqrt(5) this is PyTorch's
    default for Conv2d and Linear weights, b = 1/sqrt(fan_in)."""
    fan = fan_in_and_fan_out(tensor)[0 if mode == "fan_in" else 1]
    bound = _gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He et al. 2015: N(0, gain^2 / fan); ResNets use mode='fan_out', nonlinearity='relu'."""
    fan = fan_in_and_fan_out(tensor)[0 if mode == "fan_in" else 1]
    return normal_(tensor, 0.0, _gain(nonlinearity, a) / math.sqrt(fan))


def xavier_uniform_(tensor, gain: float = 1.0):
    """Glorot & Bengio 2010: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)
