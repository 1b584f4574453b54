"""Dropout (AlexNet's regulariser): silence random units while training so none can be relied on alone."""

from __future__ import annotations

from minicnn.autograd import Function, Tensor
from minicnn.backend import device_of


class Dropout(Function):
    """Zero each element with probability p and scale the survivors by 1/(1-p) ("inverted"
    dropout), so the expected value is unchanged and evaluation needs no rescaling.

    The mask comes from the input's device: NumPy's generator on the CPU, the GPU's
    `backend.CounterStream` there; checkpoints save both, so a resumed run draws the same masks."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        keep = device_of(x).generator.random(x.shape, dtype="float32") >= self.p
        scale = (keep / (1.0 - self.p)).astype(x.dtype)
        self.save_for_backward(scale)
        return x * scale

    def backward(self, g):
        (scale,) = self.saved
        return g * scale


def dropout(x, p: float = 0.5, training: bool = True) -> Tensor:
    """x unchanged when not training (or p = 0); otherwise random elements zeroed. Same shape as x."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout(p)(x)
