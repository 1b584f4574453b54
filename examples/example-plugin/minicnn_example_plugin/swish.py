"""Swish with a learnable slope: a custom op written as a minicnn Function, wrapped in a layer.

    y = x * sigmoid(beta * x)
    dy/dx    = s + beta * x * s * (1 - s)     s = sigmoid(beta * x)
    dy/dbeta = x^2 * s * (1 - s)

beta = 1 is SiLU; a large beta approaches ReLU; beta = 0 is x / 2 (Ramachandran, Zoph and Le, 2017).
"""

from __future__ import annotations

import minicnn
from minicnn import nn


class SwishFunction(minicnn.Function):
    """x: (N, C, *) or (N, C); beta: (C,), or (1,) shared by every channel -> y: x's shape."""

    def forward(self, x, beta):
        xp = minicnn.get_array_module(x)
        self.beta_shape = beta.shape
        b = beta.reshape(_broadcast_shape(beta.size, x.ndim))
        z = b * x
        e = xp.exp(-xp.abs(z))  # sigmoid without overflow: e / (1 + e) for z < 0
        s = xp.where(z >= 0, 1, e) / (1 + e)
        self.save_for_backward(x, b, s)
        return x * s

    def backward(self, g):
        x, b, s = self.saved
        slope = s * (1 - s)
        grad_x = g * (s + b * x * slope) if self.needs_input_grad[0] else None
        grad_beta = None
        if self.needs_input_grad[1]:
            per_element = g * x * x * slope
            summed = tuple(axis for axis, n in enumerate(b.shape) if n == 1)
            grad_beta = per_element.sum(axis=summed).reshape(self.beta_shape)
        return grad_x, grad_beta


def _broadcast_shape(channels: int, ndim: int) -> tuple:
    """beta's shape against an input of `ndim` dimensions: (1, C, 1, ...) per channel, all ones if shared."""
    if channels == 1:
        return (1,) * ndim
    return (1, channels) + (1,) * (ndim - 2)


def swish(x, beta) -> minicnn.Tensor:
    """x * sigmoid(beta * x); beta: a Tensor of shape (C,) or (1,)."""
    channels = beta.shape[0]
    if channels != 1 and (x.ndim < 2 or x.shape[1] != channels):
        raise ValueError(f"swish: beta has {channels} channels but the input has shape {x.shape} (channels on axis 1)")
    return SwishFunction()(x, beta)


class Swish(nn.Module):
    """Swish activation with a learned beta per channel (num_channels=1: one beta for all).

    x: (N, num_channels, *) -> same shape. beta starts at `beta` (1.0: SiLU).
    """

    def __init__(self, num_channels: int = 1, beta: float = 1.0):
        super().__init__()
        self.num_channels = num_channels
        self.beta = nn.Parameter(minicnn.tensor([beta] * num_channels))

    def forward(self, x):
        return swish(x, self.beta)

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"
