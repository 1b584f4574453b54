"""Layers that only reshape or pass through."""

from __future__ import annotations

from minicnn import functional as F
from minicnn.nn import arguments
from minicnn.nn.module import Module


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W): joins dimensions start_dim..end_dim (the batch axis stays)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = arguments.integer(self, "start_dim", start_dim)
        self.end_dim = arguments.integer(self, "end_dim", end_dim)

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)


class Identity(Module):
    """Returns its input: a placeholder where an architecture has an optional layer."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
