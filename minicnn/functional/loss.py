"""Losses: one number that says how wrong the predictions are."""

from __future__ import annotations

import numpy as np

from minicnn.autograd import Function, Tensor
from minicnn.backend import get_array_module, to_device, to_numpy
from minicnn.functional.activation import log_softmax_array


class CrossEntropy(Function):
    """Mean over the batch of -log softmax(logits)[target].

    logits: (N, C) float; target: (N,) integer classes in [0, C) -> scalar.
    Fused with log-softmax (log-sum-exp), so large logits neither overflow nor lose precision;
    the gradient is (softmax(logits) - onehot(target)) / N.
    """

    def forward(self, logits, target):
        xp = get_array_module(logits)
        log_probs = log_softmax_array(logits, axis=1)
        rows = xp.arange(logits.shape[0])
        self.save_for_backward(log_probs, target)
        return -log_probs[rows, target].mean()

    def backward(self, g):
        xp = get_array_module(g)
        log_probs, target = self.saved
        grad = xp.exp(log_probs)
        grad[xp.arange(grad.shape[0]), target] -= 1
        return grad * (g / grad.shape[0]), None


class MSELoss(Function):
    """Mean of squared differences (or their sum, or each one). a, b: same shape."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, a, b):
        diff = a - b
        self.save_for_backward(diff)
        squared = diff * diff
        if self.reduction == "mean":
            return squared.mean()
        return squared.sum() if self.reduction == "sum" else squared

    def backward(self, g):
        (diff,) = self.saved
        scale = 2 / diff.size if self.reduction == "mean" else 2
        grad = g * scale * diff
        return (
            grad if self.needs_input_grad[0] else None,
            -grad if self.needs_input_grad[1] else None,
        )


def cross_entropy(logits, target) -> Tensor:
    """Classification loss. logits: (N, C) scores; target: (N,) class indices (ints) -> scalar mean.

    Targets are checked to lie in [0, C). Targets given on the host (a NumPy array or a list) are
    checked there and then copied once to the logits' device, so a GPU step never waits for the
    check; targets already on a GPU cost two small reductions and one wait to read their results.
    """
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {tuple(logits.shape)}")
    target_array = target.data if isinstance(target, Tensor) else target
    if get_array_module(target_array) is np:
        target_array = np.asarray(target_array)
    if target_array.ndim != 1 or target_array.shape[0] != logits.shape[0]:
        raise ValueError(
            f"cross_entropy: target must be (N,) = ({logits.shape[0]},) class indices, got shape {tuple(target_array.shape)}"
        )
    if target_array.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer classes, got dtype {target_array.dtype}")
    if target_array.size:
        xp = get_array_module(target_array)
        low, high = to_numpy(xp.stack((target_array.min(), target_array.max()))).tolist()
        if low < 0 or high >= logits.shape[1]:
            raise ValueError(
                f"cross_entropy: targets range over [{low}, {high}] "
                f"but logits have {logits.shape[1]} classes (valid: 0 to {logits.shape[1] - 1})"
            )
    if not isinstance(target, Tensor):  # a Tensor on another device stays one: the op names both devices
        target = to_device(target_array, logits.device)
    return CrossEntropy()(logits, target)


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Squared error, reduced by 'mean' (default), 'sum' or 'none'. input, target: same shape."""
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"mse_loss: input {tuple(input.shape)} and target {tuple(target.shape)} must have one shape")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return MSELoss(reduction)(input, target)
