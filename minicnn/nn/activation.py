"""Activation layers: elementwise nonlinearities, and softmax over one dimension."""

from __future__ import annotations

from minicnn import functional as F
from minicnn.nn import arguments
from minicnn.nn.module import Module


class ReLU(Module):
    """max(x, 0). `inplace` is accepted for PyTorch compatibility; minicnn never overwrites inputs."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        arguments.flag(self, "inplace", inplace)

    def forward(self, x):
        return F.relu(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = arguments.integer(self, "dim", dim)

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)
