"""Nonlinearities and the softmax family; every one keeps its output's shape."""

from __future__ import annotations

from minicnn.autograd import Function, Tensor
from minicnn.backend import get_array_module
from minicnn.kernels import kernels_for


class ReLU(Function):
    """max(x, 0): AlexNet's activation, whose gradient does not vanish for positive inputs.
    The gradient is g where y > 0, else 0 (even where g is inf or NaN, as in PyTorch)."""

    def forward(self, x):
        y = kernels_for(x).relu(x)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return kernels_for(g).relu_backward(g, y)


class Sigmoid(Function):
    """1 / (1 + e^-x). Written with e = exp(-|x|) <= 1 (e/(1+e) for negative x), so nothing
    overflows and tiny outputs keep their relative precision."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1, e) / (1 + e)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return g * y * (1 - y)


class Tanh(Function):
    def forward(self, x):
        y = get_array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return g * (1 - y * y)


class Softmax(Function):
    """exp(x) / Σ exp(x) along `axis`, shifted by the maximum so exp never overflows."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y = e / e.sum(axis=self.axis, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """x - log Σ exp(x) along `axis` (log-sum-exp, stable for any logits)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        y = log_softmax_array(x, self.axis)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        (y,) = self.saved
        return g - xp.exp(y) * g.sum(axis=self.axis, keepdims=True)


def log_softmax_array(x, axis):
    """Raw-array log-softmax, shared with cross_entropy."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def relu(x) -> Tensor:
    return ReLU()(x)


def sigmoid(x) -> Tensor:
    return Sigmoid()(x)


def tanh(x) -> Tensor:
    return Tanh()(x)


def softmax(x, dim: int = -1) -> Tensor:
    """Probabilities along `dim` (the class axis of (N, C) logits by default)."""
    return Softmax(dim)(x)


def log_softmax(x, dim: int = -1) -> Tensor:
    return LogSoftmax(dim)(x)
