"""Keeping the ranks' models identical: rank 0's weights to every rank at the start, then one
all-reduce of the gradients per step, so every rank takes the same step.

The gradients travel as one flat buffer per (device, dtype): one all-reduce of a model's 61,706
LeNet-5 or 25.6 million ResNet-50 numbers costs one latency, where one call per parameter would
cost 10 or 161 of them. A parameter without a gradient on some rank counts as zeros there, so every
rank reduces the same buffer.
"""

from __future__ import annotations

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.distributed.communicator import Communicator


def broadcast_parameters(model, comm: Communicator, root: int = 0) -> None:
    """Overwrite every parameter and buffer of `model` on every rank with rank `root`'s, in place."""
    for tensor in (*model.parameters(), *(b for b in model.buffers() if b is not None)):
        comm.broadcast(tensor.data, root)


def all_reduce_gradients(parameters, comm: Communicator, scale: float = 1.0) -> None:
    """Replace each parameter's `.grad` by `scale` times its sum over ranks (scale 1/size: the mean).

    Parameters that do not require gradients are skipped; one whose `.grad` is None gets a gradient
    (the sum of the other ranks', or zeros), so the next optimizer step treats it on every rank alike.
    """
    groups: dict = {}
    for param in parameters:
        if param.requires_grad:
            groups.setdefault((backend.device_of(param.data), param.data.dtype), []).append(param)
    for group in groups.values():
        xp = backend.get_array_module(group[0].data)
        flat = xp.empty(sum(param.data.size for param in group), dtype=group[0].data.dtype)
        views, start = [], 0
        for param in group:
            view = flat[start:start + param.data.size]
            start += param.data.size
            if param.grad is None:
                view[...] = 0
            else:
                view[...] = param.grad.data.reshape(-1)
            views.append(view)
        comm.all_reduce(flat)
        if scale != 1.0:
            flat *= xp.asarray(scale, dtype=flat.dtype)
        for param, view in zip(group, views):
            param.grad = Tensor(view.reshape(param.data.shape))


class DistributedOptimizer:
    """An optimizer whose `step()` first averages the gradients over the ranks (ChainerMN's
    multi-node optimizer, Horovod's DistributedOptimizer): wrap any minicnn optimizer, and every
    rank takes the same step from the mean of their gradients. Each rank's loss should be the mean
    over its own batch, and the ranks' batches of equal size (minicnn's loop weights unequal ones
    itself). Everything else (`zero_grad`, `param_groups`, `state_dict`...) is the wrapped optimizer's."""

    def __init__(self, optimizer, comm: Communicator):
        self.optimizer, self.comm = optimizer, comm

    def step(self) -> None:
        if self.comm.size > 1:
            params = [param for group in self.optimizer.param_groups for param in group["params"]]
            all_reduce_gradients(params, self.comm, scale=1.0 / self.comm.size)
        self.optimizer.step()

    def __getattr__(self, name: str):
        if name == "optimizer":  # not set yet (a copy being made): no wrapped optimizer to ask
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self.comm!r})"
