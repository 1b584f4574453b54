"""Synchronised batch normalisation: each channel's statistics over the union of every rank's batch.

By default each rank of a data-parallel run normalises its slice of the global batch by that
slice's own mean and variance, which is not what one process computes on the whole batch, and
drifts further from it as slices shrink (a few images per GPU). `SyncBatchNorm` (ChainerMN's
MultiNodeBatchNormalization, PyTorch's SyncBatchNorm) makes a training step the one-process step:

    model = convert_sync_batchnorm(model, comm)   # every BatchNorm1d/2d, its weights kept

Per layer and step it costs one all-reduce of 2C+1 float64 numbers in the forward pass and one of
2C numbers (x's dtype) in the backward pass, none when the input needs no gradient. Evaluation
never communicates: ranks may evaluate different numbers of batches.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from minicnn.autograd import Function, Tensor
from minicnn.backend import get_array_module
from minicnn.distributed.communicator import Communicator
from minicnn.distributed.guard import mark_raised_on_every_rank
from minicnn.kernels import kernels_for
from minicnn.nn.regularization import BatchNorm1d, BatchNorm2d, _BatchNorm


class GlobalBatchNorm(Function):
    """Training-mode batch norm whose batch is every rank's x together (a collective: every rank
    runs it, forward and backward, in the same order).

    x: (n_r, C, ...) this rank's slice (n_r may be 0); weight, bias: (C,) or None -> (n_r, C, ...).
    Forward: the backend's training kernel gives this slice's mean m_r and biased variance v_r,
    centred (its normalised output is not used: the C kernel is still 4x faster than float64 NumPy
    sums of x and x^2), and one all-reduce of [n_r, n_r m_r, n_r (v_r + m_r^2)] in float64 gives
    the global count N, mean m and biased variance v = Σ n_r (v_r + m_r^2) / N - m^2. One round, so
    one latency per layer (a centred second pass would cost two); what cancels is only the spread
    of the ranks' means, at float64's 1e-16 (m/σ)^2 of v, where sums of x^2 in float32 would lose
    every digit once |m| passes a few thousand σ. x is then normalised by (m, v) through the
    backend's forward kernel, and the running statistics (when given) move toward m and the
    unbiased N/(N-1) v, alike on every rank.

    Backward, with g this rank's part of dL/dy for L the sum of the ranks' losses (each rank's loss
    already weighted by its share of the batch): the weight and bias gradients Σ g x_hat and Σ g
    stay this rank's own (the loop sums parameter gradients over the ranks later); the input
    gradient needs both sums over every rank (one all-reduce),
    gx = w inv_std (g - Σg/N - x_hat Σ(g x_hat)/N),
    computed as the backend's evaluation-mode gradient w inv_std g plus a per-channel affine map of
    x_hat, so both passes run on the backend's kernels (the CPU's C kernels, CuPy on a GPU).
    """

    def __init__(self, comm: Communicator, running_mean, running_var, momentum: float, eps: float):
        self.comm, self.running_mean, self.running_var = comm, running_mean, running_var
        self.momentum, self.eps = momentum, eps

    def forward(self, x, weight=None, bias=None):
        xp, kernels, channels = get_array_module(x), kernels_for(x), x.shape[1]
        local = x.size // channels
        totals = xp.zeros(1 + 2 * channels, dtype=np.float64)
        if local:
            _, (mean, var), _ = kernels.batch_norm_forward(x, None, None, self.eps)
            mean, var = mean.astype(np.float64), var.astype(np.float64)
            totals[0] = local
            totals[1:1 + channels] = local * mean
            totals[1 + channels:] = local * (var + mean * mean)
        self.comm.all_reduce(totals)
        self.count = count = int(totals[0])
        if count < 2:
            raise mark_raised_on_every_rank(ValueError(
                f"SyncBatchNorm: training needs more than one value per channel over every rank's batch, got "
                f"{count} in all ({self.comm.size} ranks; input {tuple(x.shape)} on rank {self.comm.rank})"))
        mean = totals[1:1 + channels] / count
        var = xp.maximum(totals[1 + channels:] / count - mean * mean, 0.0)
        if self.running_mean is not None:
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
            self.running_var[...] = (1 - m) * self.running_var + m * var * (count / (count - 1))
        stats = (mean.astype(x.dtype), var.astype(x.dtype))
        y, _, saved = kernels.batch_norm_forward(x, weight, bias, self.eps, stats)
        self.save_for_backward(stats[1], *saved)
        return y

    def backward(self, g):
        var, *saved = self.saved
        kernels = kernels_for(g)
        needs = self.needs_input_grad + (False, False)
        gx, g_sum, g_dot_x_hat = kernels.batch_norm_backward(g, *saved, False, needs[0])
        if needs[0]:  # gx holds w inv_std g so far: the evaluation-mode gradient
            xp, channels = get_array_module(g), g.shape[1]
            sums = xp.concatenate([g_sum, g_dot_x_hat])
            self.comm.all_reduce(sums)
            _, _, inv_std, weight = saved
            scale = inv_std if weight is None else inv_std * weight
            slope, shift = -scale * sums[channels:] / self.count, -scale * sums[:channels] / self.count
            gx += _x_hat_affine(kernels, saved, var, self.eps, slope, shift)
        return gx, g_dot_x_hat if needs[1] else None, g_sum if needs[2] else None


def _x_hat_affine(kernels, saved: tuple, var, eps: float, slope, shift):
    """x_hat * slope + shift per channel (slope, shift: (C,)) -> (N, C, ...), from what the
    backend's forward kernel saved: x_hat itself (mean None), or x and mean, which the same kernel
    maps in one pass (it recomputes inv_std from var exactly as it did in the forward pass)."""
    x, mean, _, _ = saved
    if mean is None:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * slope.reshape(shape) + shift.reshape(shape)
    return kernels.batch_norm_forward(x, slope, shift, eps, (mean, var))[0]


def sync_batch_norm(x, comm: Communicator, running_mean=None, running_var=None, weight=None, bias=None,
                    momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Training-mode batch norm over every rank's x (GlobalBatchNorm); every rank of `comm` calls it.

    x: (n_r, C, ...) this rank's slice; running_mean, running_var: (C,) arrays or Tensors updated in
    place, or None; weight, bias: (C,) or None -> (n_r, C, ...).
    """
    if x.ndim not in (2, 3, 4, 5):
        raise ValueError(f"sync_batch_norm: input must be (N, C, ...), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    named = (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias))
    for name, value in named:
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(f"sync_batch_norm: {name} must have shape ({channels},) for input {tuple(x.shape)}, "
                             f"got {tuple(value.shape)}")
    running = [value.data if isinstance(value, Tensor) else value for value in (running_mean, running_var)]
    inputs = [x, weight, bias]
    while inputs[-1] is None:
        inputs.pop()
    return GlobalBatchNorm(comm, *running, momentum, eps)(*inputs)


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are those of the whole job's batch; evaluation is plain
    batch norm (running statistics, or this rank's batch without them), with no communication.

    x: (N, C), (N, C, L) or (N, C, H, W) -> same shape. Its state_dict names are batch norm's
    (weight, bias, running_mean, running_var, num_batches_tracked), so checkpoints interchange with
    BatchNorm1d/2d. `comm` is the job's communicator (minicnn.distributed.world() when None).
    """

    expected_ndim = (2, 3, 4)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, comm: Communicator | None = None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        if comm is None:
            from minicnn.distributed import world

            comm = world()
        self.comm = comm

    @classmethod
    def from_batch_norm(cls, layer: _BatchNorm, comm: Communicator) -> SyncBatchNorm:
        """A SyncBatchNorm holding `layer`'s own Parameter and buffer objects (not copies), so an
        optimizer built on them keeps working, and its settings, mode and input-shape check."""
        sync = cls.__new__(cls)
        for name, value in vars(layer).items():
            object.__setattr__(sync, name, OrderedDict(value) if isinstance(value, OrderedDict) else value)
        sync.expected_ndim = layer.expected_ndim
        sync.comm = comm
        return sync

    def forward(self, x):
        if not self.training or x.ndim not in self.expected_ndim or x.shape[1] != self.num_features:
            return super().forward(x)  # evaluation; or a wrong shape, which batch norm's checks refuse
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:  # a cumulative average of every batch seen, as BatchNorm does
                momentum = 1.0 / int(self.num_batches_tracked.data)
        return sync_batch_norm(x, self.comm, self.running_mean, self.running_var, self.weight, self.bias,
                               momentum or 0.0, self.eps)


def convert_sync_batchnorm(model, comm: Communicator):
    """`model` with every BatchNorm1d and BatchNorm2d inside it replaced, in place, by a
    SyncBatchNorm on `comm` that holds the same Parameter and buffer objects: state_dict keys and
    values, and optimizers already built on `model.parameters()`, stay valid. A layer reachable
    under several names becomes one SyncBatchNorm. Returns `model`, or a new SyncBatchNorm when
    `model` itself is a batch norm layer."""
    converted: dict[int, SyncBatchNorm] = {}

    def convert(layer):
        if id(layer) not in converted:
            converted[id(layer)] = SyncBatchNorm.from_batch_norm(layer, comm)
        return converted[id(layer)]

    if isinstance(model, (BatchNorm1d, BatchNorm2d)):
        return convert(model)
    for module in list(model.modules()):
        for name, child in module._modules.items():
            if isinstance(child, (BatchNorm1d, BatchNorm2d)):
                module._modules[name] = convert(child)
    return model
