"""One `mc.fit` of a registered model on seeded random images, as one rank of the job mpiexec
started (distributed=True), or as one process when started alone; every rank saves its history and
its model's final state (weights and batch-norm statistics) for the test.

    mpiexec -n 2 python e_fit.py FOLDER '{"model": "resnet20", "images": [64, 3, 16, 16], "fit": {...}}'

The JSON: "model" (a registered name), "images" (the training set's shape), "data_seed" (0 by
default), "float64" (true: the model computes in float64 on float32 images; false by default), "fit" (mc.fit's keyword arguments: out, resume, epochs, sync_bn...), and optionally
"fault": {"rank": R, "step": S, "kind": "kill" or "raise"}: rank R sends itself SIGKILL, or raises,
in its S-th training forward pass of this call (a resumed run counts from its first step); a
"fault" of null keeps the wrapper (and so the weights' names) without failing.
"""

import json
import os
import signal
import sys

import numpy as np
from e_common import save

import minicnn as mc
import minicnn.distributed as dist
from minicnn import nn


class Faulty(nn.Module):
    """`inner`, failing on rank `fault["rank"]` at its `fault["step"]`-th training forward pass."""

    def __init__(self, inner: nn.Module, fault: dict | None, rank: int):
        super().__init__()
        self.inner = inner
        self.fault = fault if fault is not None and fault["rank"] == rank else None
        self.steps = 0

    def forward(self, x):
        if self.training and self.fault is not None:
            self.steps += 1
            if self.steps == self.fault["step"]:
                if self.fault["kind"] == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise OSError(f"cannot read shard-3.bin at step {self.steps}")
        return self.inner(x)


class InFloat64(nn.Module):
    """`inner` in float64, given float64 copies of the float32 batches minicnn's DataLoader makes."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner.double()

    def forward(self, x):
        return self.inner(x.to(mc.float64))


def images(shape: list, seed: int, classes: int = 10) -> tuple:
    """Random images and labels, the same for the same seed on every rank and in every run."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, size=shape[0])


def main(folder: str, options: str) -> None:
    options = json.loads(options)
    distributed = dist.launched_by_mpi()
    rank = dist.world().rank if distributed else 0
    mc.manual_seed(0)
    model = mc.create_model(options["model"])
    if options.get("float64"):
        model = InFloat64(model)
    if "fault" in options:
        model = Faulty(model, options["fault"], rank)
    train = images(options["images"], options.get("data_seed", 0))
    history = mc.fit(model, train, progress=False, distributed=distributed, **options["fit"])
    state = {name: np.array(value, copy=True) for name, value in model.state_dict().items()}
    out = options["fit"].get("out") or options["fit"].get("resume")
    save(folder, rank, {"history": history, "state": state, "out": out})


if __name__ == "__main__":
    main(*sys.argv[1:])
