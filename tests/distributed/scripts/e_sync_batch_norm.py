"""SyncBatchNorm on each rank: a plain BatchNorm1d/2d converted by convert_sync_batchnorm, trained
STEPS forward and backward passes, each rank on its slice of one global float64 batch, then
evaluated. Each case's inputs (the same on every rank) and this rank's results go to the test, which
computes one process's batch norm over the whole batch.

    mpiexec -n 2 python e_sync_batch_norm.py FOLDER

Rank 0 takes the first `first` samples of each batch, rank 1 the rest; each rank's loss is its
slice's mean of the per-sample losses Σ g*y, weighted n_r/N (the loop's weighting), so the ranks'
losses add up to the whole batch's mean loss.
"""

import sys

import numpy as np
from e_common import save

import minicnn as mc
import minicnn.distributed as dist
from minicnn import nn

STEPS = 2
CASES = {  # name: (global batch shape, samples on rank 0, momentum)
    "unequal 2d": ((8, 3, 4, 5), 5, 0.1),
    "unequal 1d": ((9, 4), 6, None),
    "rank 1 empty": ((6, 3, 2, 2), 6, 0.1),
}


def run(comm, shape: tuple, first: int, momentum) -> dict:
    rng = np.random.default_rng(0)
    channels = shape[1]
    inputs = {"weight": rng.standard_normal(channels), "bias": rng.standard_normal(channels),
              "x": [3 * rng.standard_normal(shape) + 1 for _ in range(STEPS)],
              "g": [rng.standard_normal(shape) for _ in range(STEPS)]}
    layer = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(channels, momentum=momentum).double()
    layer.weight.data[...], layer.bias.data[...] = inputs["weight"], inputs["bias"]
    model = dist.convert_sync_batchnorm(nn.Sequential(layer), comm)
    part = slice(0, first) if comm.rank == 0 else slice(first, shape[0])
    steps = []
    for x, g in zip(inputs["x"], inputs["g"]):
        model.zero_grad()
        images = mc.tensor(x[part], requires_grad=True)
        y = model(images)
        ((y * mc.tensor(g[part])).sum() * (1.0 / shape[0])).backward()  # (n_r/N) * (Σ g*y / n_r)
        synced = model[0]
        steps.append({"y": y.numpy(), "x_grad": images.grad.numpy(), "weight_grad": synced.weight.grad.numpy(),
                      "bias_grad": synced.bias.grad.numpy(), **synced.state_dict()})
    model.eval()
    evaluated = model(mc.tensor(inputs["x"][-1][part])).numpy()
    return {"inputs": inputs, "part": part, "steps": steps, "evaluated": evaluated,
            "type": type(model[0]).__name__, "same_weight": model[0].weight is layer.weight}


def main(folder: str) -> None:
    comm = dist.world()
    save(folder, comm.rank, {name: run(comm, *case) for name, case in CASES.items()})


if __name__ == "__main__":
    main(sys.argv[1])
