"""Layers that behave differently in training and evaluation: dropout and normalisation."""

from __future__ import annotations

import numpy as np

from minicnn import functional as F
from minicnn.nn import arguments
from minicnn.nn.module import Module, Parameter


class Dropout(Module):
    """Zero elements with probability p while training (survivors scaled by 1/(1-p)); identity in eval()."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = arguments.fraction(self, "p", p)
        arguments.flag(self, "inplace", inplace)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BatchNorm(Module):
    """Per-channel normalisation with learned scale (weight) and shift (bias), and running
    statistics (buffers running_mean, running_var, num_batches_tracked) for evaluation."""

    expected_ndim: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.num_features = arguments.positive_int(self, "num_features", num_features)
        self.eps = arguments.positive_number(self, "eps", eps)
        self.momentum = None if momentum is None else arguments.fraction(self, "momentum", momentum)
        self.affine = arguments.flag(self, "affine", affine)
        self.track_running_stats = arguments.flag(self, "track_running_stats", track_running_stats)
        channels = self.num_features
        self.weight = Parameter(np.ones(channels, dtype=np.float32)) if self.affine else None
        self.bias = Parameter(np.zeros(channels, dtype=np.float32)) if self.affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(channels, dtype=np.float32))
            self.register_buffer("running_var", np.ones(channels, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.running_mean = self.running_var = None

    def forward(self, x):
        if x.ndim not in self.expected_ndim:
            raise ValueError(
                f"{type(self).__name__}: input must have {' or '.join(map(str, self.expected_ndim))} dimensions "
                f"(N, C{', ...' if max(self.expected_ndim) > 2 else ''}), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): input has {x.shape[1]} channels, shape {tuple(x.shape)}")
        use_batch_stats = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:  # a cumulative average of every batch seen, as PyTorch does
                momentum = 1.0 / int(self.num_batches_tracked.data)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, momentum or 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs."""

    expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs: statistics per channel over N, H and W."""

    expected_ndim = (4,)


class LocalResponseNorm(Module):
    """AlexNet's normalisation across neighbouring channels. x: (N, C, ...) -> same shape."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size = arguments.positive_int(self, "size", size)
        self.alpha, self.beta = arguments.number(self, "alpha", alpha), arguments.number(self, "beta", beta)
        self.k = arguments.number(self, "k", k)

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
