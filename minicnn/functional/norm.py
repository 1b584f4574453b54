"""Normalisation: batch normalisation (VGG-BN, GoogLeNet, ResNet) and local response normalisation (AlexNet)."""

from __future__ import annotations

from minicnn.autograd import Function, Tensor
from minicnn.backend import get_array_module
from minicnn.kernels import kernels_for


class BatchNorm(Function):
    """Normalise each channel to zero mean and unit variance, then scale and shift.

    x: (N, C) or (N, C, H, W); weight, bias: (C,) or None -> same shape as x.
    Training: statistics of this batch (biased variance), and the running statistics move toward
    them by `momentum`, the variance with Bessel's correction n/(n-1) as PyTorch does.
    Evaluation: the running statistics, so the op is a fixed affine map.
    The device's kernel backend computes both passes (`batch_norm_forward`, `batch_norm_backward`)
    and chooses what the backward pass needs kept (the CPU's C kernels keep x and recompute x_hat).
    """

    def __init__(self, running_mean, running_var, training, momentum, eps):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, weight=None, bias=None):
        stats = None if self.training else (self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype))
        y, (mean, var), saved = kernels_for(x).batch_norm_forward(x, weight, bias, self.eps, stats)
        if self.training and self.running_mean is not None:
            n, m = x.size // x.shape[1], self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
            self.running_var[...] = (1 - m) * self.running_var + m * var * (n / max(n - 1, 1))
        self.save_for_backward(*saved)
        return y

    def backward(self, g):
        """The backend's (gx, Σ g, Σ g * x_hat): the input, bias and weight gradients."""
        needs = self.needs_input_grad + (False, False)
        gx, g_sum, g_dot_x_hat = kernels_for(g).batch_norm_backward(g, *self.saved, self.training, needs[0])
        return gx, g_dot_x_hat if needs[1] else None, g_sum if needs[2] else None


class LocalResponseNorm(Function):
    """Divide each activation by the energy of its neighbours across channels (AlexNet, 2012).

    x: (N, C, ...) -> same shape. s_c = k + alpha/size * Σ_{c'} x_{c'}^2 over the `size` channels
    c - size//2 .. c + (size-1)//2 (zeros past the edges), and y_c = x_c / s_c^beta (PyTorch's form).
    """

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        before, after = self.size // 2, (self.size - 1) // 2
        s = self.k + (self.alpha / self.size) * _channel_window_sum(x * x, before, after)
        y = x * s ** (-self.beta)
        self.save_for_backward(x, s, y)
        return y

    def backward(self, g):
        x, s, y = self.saved
        # y_c depends on x_j for c in [j - after, j + before]: the window, mirrored.
        before, after = self.size // 2, (self.size - 1) // 2
        mirrored = _channel_window_sum(g * y / s, after, before)
        return g * s ** (-self.beta) - (2 * self.alpha * self.beta / self.size) * x * mirrored


def _channel_window_sum(a, before: int, after: int):
    """out[:, c] = Σ a[:, c - before .. c + after] over channels, zero beyond the edges."""
    xp = get_array_module(a)
    widths = [(0, 0)] * a.ndim
    widths[1] = (before + 1, after)
    running = xp.cumsum(xp.pad(a, widths), axis=1)
    channels = a.shape[1]
    return running[:, before + after + 1 : before + after + 1 + channels] - running[:, :channels]


def _as_array(value):
    return value.data if isinstance(value, Tensor) else value


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation. x: (N, C) or (N, C, H, W); running_mean, running_var: (C,) arrays or
    Tensors updated in place when training (may be None when training); weight, bias: (C,) or None."""
    if x.ndim not in (2, 3, 4, 5):
        raise ValueError(f"batch_norm: input must be (N, C, ...), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},) for input {tuple(x.shape)}, got {tuple(value.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
    if training and x.numel() // channels < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got input {tuple(x.shape)}")
    op = BatchNorm(_as_array(running_mean), _as_array(running_var), training, momentum, eps)
    inputs = [x, weight, bias]
    while inputs[-1] is None:
        inputs.pop()
    return op(*inputs)


def local_response_norm(x, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """AlexNet's LRN across channels. x: (N, C, ...) -> same shape. AlexNet used size=5,
    alpha=1e-4, beta=0.75, k=2."""
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: input must be (N, C, ...), got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"local_response_norm: size must be at least 1, got {size}")
    return LocalResponseNorm(size, alpha, beta, k)(x)
