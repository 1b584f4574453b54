"""One run of `minicnn.train.run.train` (what `minicnn train` does), or `resume` of one, as one rank
of the job mpiexec started, or as one process when started alone; every rank saves its history
and its model's final weights for the test (rank 0 alone writes the run folder).

    mpiexec -n 2 python e_train.py FOLDER '{"model": "lenet5", "dataset": "digits", ...}'
    mpiexec -n 2 python e_train.py FOLDER --resume RUN_FOLDER [EPOCHS]
"""

import json
import sys

import numpy as np
from e_common import save

import minicnn.distributed as dist
from minicnn.train import TrainConfig, resume, train
from minicnn.train.trainer import Trainer


def keep_final_weights(kept: dict) -> None:
    """Make Trainer.fit record its model's weights when it returns (the loop's model is built inside
    `train`, out of this script's reach)."""
    fit = Trainer.fit

    def fit_and_keep(self, epochs):
        history = fit(self, epochs)
        kept["state"] = {name: np.array(value, copy=True) for name, value in self.model.state_dict().items()}
        return history

    Trainer.fit = fit_and_keep


def main(folder: str, *args: str) -> None:
    comm = dist.world() if dist.launched_by_mpi() else None
    rank = 0 if comm is None else comm.rank
    kept: dict = {}
    keep_final_weights(kept)
    with dist.abort_on_error(comm or dist.SingleProcess()):
        if args[0] == "--resume":
            epochs = int(args[2]) if len(args) > 2 else None
            result = resume(args[1], notify=lambda message: None, epochs=epochs, communicator=comm)
        else:
            result = train(TrainConfig(**json.loads(args[0])), notify=lambda message: None, communicator=comm)
    save(folder, rank, {"history": result.history, "out": str(result.out_dir), **kept})


if __name__ == "__main__":
    main(*sys.argv[1:])
