"""minicnn.distributed.gradients on each rank: all_reduce_gradients over gradients that differ by
rank (one of them missing on rank 1), broadcast_parameters over models built differently on each
rank, and a few steps of DistributedOptimizer, each rank on its half of every batch. Inputs and
results go to the test, which computes the expected values in one process.

    mpiexec -n 2 python e_gradients.py FOLDER
"""

import sys

import numpy as np
from e_common import save

import minicnn as mc
import minicnn.distributed as dist
import minicnn.functional as F
from minicnn import nn

STEPS, BATCH, LR, MOMENTUM = 3, 8, 0.1, 0.9


def reduced_gradients(comm) -> dict:
    """Three parameters: float32 with a gradient on every rank, float64 with one on rank 0 only,
    and one that requires no gradient."""
    rng = np.random.default_rng(comm.rank)
    both = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    rank0_only = nn.Parameter(np.zeros(4))
    frozen = nn.Parameter(np.zeros(2))
    frozen.requires_grad = False
    both.grad = mc.Tensor(rng.standard_normal((2, 3)).astype(np.float32))
    if comm.rank == 0:
        rank0_only.grad = mc.Tensor(rng.standard_normal(4))
    given = {"both": both.grad.numpy().copy(),
             "rank0_only": None if rank0_only.grad is None else rank0_only.grad.numpy().copy()}
    dist.all_reduce_gradients([both, rank0_only, frozen], comm, scale=0.25)
    return {"given": given, "both": both.grad.numpy(), "rank0_only": rank0_only.grad.numpy(), "frozen": frozen.grad}


def state(model) -> dict:
    return {name: np.array(value, copy=True) for name, value in model.state_dict().items()}


def broadcast_model(comm) -> dict:
    """A model whose weights and batch-norm statistics differ by rank, before and after the broadcast."""
    rng = np.random.default_rng(comm.rank)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    for param in model.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    for _ in range(comm.rank + 1):  # num_batches_tracked differs too
        model(mc.tensor(rng.standard_normal((5, 3)).astype(np.float32)))
    before = state(model)
    dist.broadcast_parameters(model, comm)
    return {"before": before, "after": state(model)}


def distributed_steps(comm) -> dict:
    """STEPS steps of SGD with momentum through DistributedOptimizer, in float64, each rank
    on its half of each global batch of BATCH samples."""
    mc.manual_seed(100 + comm.rank)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    dist.broadcast_parameters(model, comm)
    initial = state(model)
    rng = np.random.default_rng(7)
    images, labels = rng.standard_normal((STEPS, BATCH, 4)), rng.integers(0, 3, size=(STEPS, BATCH))
    optimizer = dist.DistributedOptimizer(mc.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM), comm)
    half = slice(comm.rank * BATCH // 2, (comm.rank + 1) * BATCH // 2)
    for step in range(STEPS):
        optimizer.zero_grad()
        F.cross_entropy(model(mc.tensor(images[step, half])), labels[step, half]).backward()
        optimizer.step()
    return {"initial": initial, "final": state(model), "images": images, "labels": labels}


def main(folder: str) -> None:
    comm = dist.world()
    save(folder, comm.rank, {"reduced": reduced_gradients(comm), "broadcast": broadcast_model(comm),
                             "optimizer": distributed_steps(comm)})


if __name__ == "__main__":
    main(sys.argv[1])
