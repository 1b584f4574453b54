"""`Ranks`: what a run does differently when it is one rank of a data-parallel job.

`train`, `resume` and `mc.fit` are written once, for any number of ranks; `Ranks(communicator)`
answers the few questions where ranks differ (is this the lead rank, which part of each batch is
mine) and does the few things they do together (agree on a setup step, check that every rank was
started alike, take the lead's value). With no communicator, or one of a single rank, each of these
is what one process does anyway, and nothing is imported from minicnn.distributed.

Setup steps run through `together` cannot contain collectives: a rank that fails in one goes
straight to the agreement while the others would wait in the collective.
"""

from __future__ import annotations

import zlib

import numpy as np

from minicnn import backend


class Ranks:
    """This process's place in the job: `lead` (rank 0 writes the run folder and reports), `part`
    (its share of each batch, for DataLoader(part=...)), and `communicator` (None in one process)."""

    def __init__(self, communicator=None):
        self.communicator = communicator if communicator is not None and communicator.size > 1 else None
        self.rank = self.communicator.rank if self.communicator else 0
        self.size = self.communicator.size if self.communicator else 1
        self.lead = self.rank == 0
        self.part = (self.rank, self.size)

    def together(self, action, *args, **kwargs):
        """`action(*args, **kwargs)` here; in a job, failing on every rank when it failed on any (see
        minicnn.distributed.agree)."""
        if self.communicator is None:
            return action(*args, **kwargs)
        from minicnn.distributed.guard import agree

        return agree(self.communicator, action, *args, **kwargs)

    def lead_together(self, action, *args, **kwargs):
        """`action(*args, **kwargs)` on rank 0 alone (its result there, None elsewhere), failing on every
        rank when it failed (a step such as reading or locking the run folder, which the lead alone does)."""
        return self.together(action if self.lead else _nothing, *args, **kwargs)

    def same(self, what: str, description: dict) -> None:
        """Refuse, on every rank, a job whose ranks' `description`s of `what` differ."""
        if self.communicator is not None:
            from minicnn.distributed.guard import refuse_differences

            refuse_differences(self.communicator, what, description)

    def from_lead(self, value):
        """Rank 0's `value`, on every rank."""
        return value if self.communicator is None else self.communicator.broadcast_object(value)

    def reporters(self, callbacks, progress, notify):
        """(callbacks, progress, notify) for this rank: the given ones on the lead, silent ones elsewhere,
        so that a job reports once."""
        return (callbacks, progress, notify) if self.lead else (None, None, _silent)

    def device(self, requested) -> backend.Device:
        """The device this rank trains on, for the `requested` one ("cpu", "cuda", "cuda:N" as typed:
        "cuda" and "cuda:0" differ in a job): on GPUs, the one of its local rank."""
        target = backend.device(requested)
        if self.communicator is None or target.type == "cpu":
            return target
        from minicnn.distributed import rank_device

        return rank_device(requested, self.communicator)

    def start(self, trainer) -> None:
        """Refuse ranks that read other data or built other models; give every rank rank 0's weights."""
        if self.communicator is None:
            return
        from minicnn.distributed import broadcast_parameters

        test = trainer.test_loader.dataset if trainer.test_loader is not None else None
        self.same("data", data_description(trainer.train_loader.dataset, test))
        self.same("models", {name: list(value.shape) for name, value in trainer.model.state_dict().items()})
        broadcast_parameters(trainer.model, self.communicator)

    def synchronized_batch_norm(self, model):
        """`model` with its batch-norm layers computing statistics over the whole job's batch."""
        if self.communicator is None:
            return model
        from minicnn.distributed import convert_sync_batchnorm

        return convert_sync_batchnorm(model, self.communicator)


def data_description(train_set, test_set) -> dict:
    """What must be equal on every rank for the ranks to train on the same data: sizes, classes, and a
    checksum of the labels (cheap, and different for a different split or order)."""
    described = {"train images": len(train_set), "classes": list(getattr(train_set, "classes", []))}
    described["train labels checksum"] = _checksum(getattr(train_set, "labels", None))
    if test_set is not None:
        described["test images"] = len(test_set)
        described["test labels checksum"] = _checksum(getattr(test_set, "labels", None))
    return described


def _checksum(labels) -> int | None:
    """A checksum of a label array that depends on the order too (CRC-32 of its bytes as int64)."""
    if labels is None:
        return None
    return zlib.crc32(np.ascontiguousarray(labels, dtype=np.int64).tobytes())


def _nothing(*args, **kwargs) -> None:
    """What a rank other than the lead does in a step the lead alone takes."""


def _silent(message: str) -> None:
    """notify() on ranks other than 0: the lead says it once."""
