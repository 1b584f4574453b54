"""The training loop: epochs of minibatch gradient descent, evaluation, metrics and checkpoints.

Each epoch: train on every batch (forward, cross-entropy, backward, optimizer step), evaluate on
the test set, and record the epoch in the run folder (`RunFolder.record_epoch`: its metrics line,
the `best` checkpoint when test accuracy improved, then the `last` one). Everything a resumed run needs is in the
checkpoint: model, optimizer, scheduler, epoch, best accuracy and epoch, and the random generator's
state; the data order of epoch e depends only on (seed, e). So a run stopped at any moment and
resumed from `last` finishes with the same weights as one never stopped, and with the same `best`:
`last` is written last, so a run killed while writing `best` has not recorded the epoch as done and
writes `best` again when it repeats it.

Weights that became NaN or infinite are never saved (one batch per epoch can take them there with
a finite loss): the run stops and the last good checkpoints stay.

Reading a loss or logits on a GPU waits for every kernel queued before it, so each batch's loss and
predicted classes stay on the device (`PendingBatches`) and are read every `sync_every` batches
and at the epoch's last batch: every batch on the CPU, where reading costs nothing, and every
GPU_SYNC_EVERY on a GPU. A NaN or infinite loss is checked at each read, before that batch's step,
and named by the batch that produced it; on a GPU up to GPU_SYNC_EVERY - 1 further steps may have
run by then, on weights that are never saved.

Without a run folder (`out_dir=None`, `mc.fit` without `out`) the loop writes nothing: the model
object is the result. Without a test set (`test_loader=None`) an epoch's metrics have no test_loss
or test_accuracy and `best` is the latest epoch, as no other can be told better.

The loop never prints: it reports through a `Callbacks` object (the CLI draws progress bars).

Data-parallel (a `communicator` of several ranks, minicnn.distributed): every rank runs this loop on
its part of each global batch (`DataLoader(part=...)`). A rank backpropagates its loss times
n_rank / n_batch and the gradients are summed over the ranks, so each step is the step one process
takes on the whole batch, also when the parts differ in size; a final batch with fewer images than
ranks is skipped. The batches' losses and counts are summed over the ranks before they are read, so
every rank sees the same metrics and a NaN loss stops every rank at the same batch. At an epoch's
end the ranks' batch-norm running statistics (every floating-point buffer) are averaged; evaluation
is split across the ranks and its sums added up. Dropout draws differ per rank: ranks other than 0
reseed from (seed, epoch, rank) at each epoch. Only rank 0 is given a run folder and callbacks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor, no_grad
from minicnn.distributed.gradients import all_reduce_gradients
from minicnn.functional import cross_entropy
from minicnn.train.checkpoint import first_non_finite
from minicnn.train.run_folder import RunFolder

# Batches between two reads of the metrics on a GPU: one wait per 20 steps costs next to nothing
# (the GPU works through the queued steps meanwhile), and the progress bar still moves several times
# a second for models the size of LeNet-5, where a step takes milliseconds.
GPU_SYNC_EVERY = 20


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class NonFiniteWeightsError(FloatingPointError):
    """A weight or buffer became NaN or infinite by the end of an epoch; it is not saved, and the last
    good checkpoint is kept."""


class Callbacks:
    """Hooks the loop calls; subclass and override what you need (all do nothing by default)."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        pass

    def on_batch(self, epoch: int, batch: int, loss: float, accuracy: float, images_per_second: float) -> None:
        """After the step of every `Trainer.sync_every`-th batch and of the epoch's last one (every batch
        on the CPU, every GPU_SYNC_EVERY on a GPU); loss and accuracy are the epoch's means so far."""

    def on_evaluate_start(self, epoch: int, batches: int) -> None:
        pass

    def on_epoch_end(self, metrics: dict) -> None:
        pass


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0

    def add(self, loss: float, correct: int, size: int) -> None:
        self.loss_sum += loss * size
        self.correct += correct
        self.seen += size

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.seen, 1)


class PendingBatches:
    """Batches whose loss and predicted classes have not been read yet, kept where they were computed.

    add() keeps a batch's loss (a 0-d array) and the argmax of its logits (N,) on their device, and
    its labels (N,) on the host; read() brings every loss and prediction to the host in two copies
    and empties the list.
    """

    def __init__(self):
        self._batches = []

    def add(self, batch: int, loss: Tensor, logits: Tensor, labels: np.ndarray) -> None:
        self._batches.append((batch, loss.data, logits.data.argmax(axis=1), labels))

    def read(self) -> list[tuple[int, float, int, int]]:
        """(batch, loss, correct predictions, batch size) of each pending batch, in order."""
        if not self._batches:
            return []
        batches, losses, predictions, labels = zip(*self._batches)
        self._batches = []
        xp = backend.get_array_module(losses[0])
        losses = backend.to_numpy(xp.stack(losses)).tolist()
        predicted = backend.to_numpy(xp.concatenate(predictions))
        rows, start = [], 0
        for batch, loss, truth in zip(batches, losses, labels):
            rows.append((batch, loss, int((predicted[start:start + len(truth)] == truth).sum()), len(truth)))
            start += len(truth)
        return rows


def batch_arrays(images, labels, device) -> tuple[Tensor, np.ndarray]:
    """A loader's batch as the loop takes it: the images (B, C, H, W) as a Tensor on `device`, the
    labels (B,) as a NumPy array on the host (a loader may yield either as arrays or as Tensors)."""
    if isinstance(images, Tensor):
        images = images.data
    if isinstance(labels, Tensor):
        labels = labels.data
    return Tensor(backend.to_device(images, device)), backend.to_numpy(labels)


def evaluate(model, loader, device="cpu", communicator=None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` over every batch of `loader`, in eval mode; the
    metrics are read from the device once, at the end. With a `communicator`, each rank evaluates
    its part of the batches (`loader.part`) and the result is the whole set's, on every rank."""
    stats, pending = EpochStats(), PendingBatches()
    with model.evaluating(), no_grad():
        for batch, (images, labels) in enumerate(loader, start=1):
            if len(labels) == 0:  # this rank's part of a final batch smaller than the ranks
                continue
            images, labels = batch_arrays(images, labels, device)
            logits = model(images)
            pending.add(batch, cross_entropy(logits, labels), logits, labels)
    for _, loss, correct, size in pending.read():
        stats.add(loss, correct, size)
    if communicator is not None and communicator.size > 1:
        totals = np.array([stats.loss_sum, stats.correct, stats.seen], dtype=np.float64)
        communicator.all_reduce(totals)
        stats = EpochStats(float(totals[0]), int(totals[1]), int(totals[2]))
    return stats.loss, stats.accuracy


def summed_over_ranks(rows: list, communicator) -> list:
    """`PendingBatches.read()` rows, (batch, mean loss, correct, size), of the whole job's batches:
    every rank's parts added up (the rows themselves without a communicator of several ranks).
    Every rank must pass rows for the same batches, as the training loop does."""
    if communicator is None or communicator.size == 1 or not rows:
        return rows
    totals = np.array([[loss * size, correct, size] for _, loss, correct, size in rows], dtype=np.float64)
    communicator.all_reduce(totals)
    return [(batch, float(total / size), int(correct), int(size)) for (batch, *_), (total, correct, size) in zip(rows, totals)]


class Trainer:
    """Trains `model` with `optimizer` (and an optional per-epoch `scheduler`) on `train_loader`,
    evaluating on `test_loader` (None: no test set), writing into the run folder `out_dir`
    (`self.run_folder`, a RunFolder, or None to write nothing; `train`, `resume` and `mc.fit` hold its
    lock around `fit`). `meta` is stored in every checkpoint
    (what is needed to rebuild the model and its data later: names, classes, normalisation).
    `sync_every`: batches between reads of the loss and accuracy (see the module's docstring);
    default 1 on the CPU, GPU_SYNC_EVERY on a GPU.
    `communicator`: the ranks of a data-parallel job (minicnn.distributed), None for one process;
    the loaders are then each rank's `part` (see the module's docstring)."""

    def __init__(self, model, optimizer, train_loader, test_loader, out_dir, scheduler=None, device="cpu",
                 meta: dict | None = None, callbacks: Callbacks | None = None, sync_every: int | None = None,
                 communicator=None):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.test_loader = train_loader, test_loader
        self.run_folder = RunFolder(out_dir) if out_dir is not None else None
        self.device = backend.device(device)
        if sync_every is None:
            sync_every = 1 if self.device.type == "cpu" else GPU_SYNC_EVERY
        if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
            raise ValueError(f"Trainer: sync_every must be a whole number of batches, 1 or more, got {sync_every!r}")
        self.sync_every = sync_every
        self.meta = dict(meta or {})
        self.callbacks = callbacks or Callbacks()
        self.communicator = communicator if communicator is not None and communicator.size > 1 else None
        self.epoch = 0
        self.best_accuracy = -1.0
        self.best_epoch = None

    def state(self) -> dict:
        """What a checkpoint stores besides the model and optimizer arrays."""
        return {
            **self.meta,
            "epoch": self.epoch,
            "best_accuracy": self.best_accuracy,
            "best_epoch": self.best_epoch,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng_state": backend.get_rng_state(),
        }

    def restore(self, checkpoint) -> None:
        """Continue from a checkpoint written by this loop (see `minicnn.train.resume`)."""
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        if self.scheduler is not None and checkpoint.meta.get("scheduler") is not None:
            self.scheduler.load_state_dict(checkpoint.meta["scheduler"])
        backend.set_rng_state(checkpoint.meta["rng_state"])
        self.epoch = int(checkpoint.meta["epoch"])
        self.best_accuracy = float(checkpoint.meta["best_accuracy"])
        self.best_epoch = checkpoint.meta.get("best_epoch")  # absent from checkpoints of older minicnn

    def fit(self, epochs: int) -> list[dict]:
        """Train until `epochs` epochs are done (counting those of a restored run); returns their metrics."""
        if self.run_folder is not None:
            self.run_folder.path.mkdir(parents=True, exist_ok=True)
        history = []
        while self.epoch < epochs:
            history.append(self._run_epoch(self.epoch + 1, epochs))
        return history

    def _run_epoch(self, epoch: int, epochs: int) -> dict:
        self.model.train()
        self.train_loader.set_epoch(epoch)
        self.callbacks.on_epoch_start(epoch, epochs, len(self.train_loader))
        if self.communicator is not None and self.communicator.rank > 0:  # dropout: this rank's own draws
            backend.manual_seed(int(np.random.SeedSequence([self.train_loader.seed, epoch, self.communicator.rank]).generate_state(1)[0]))
        stats, pending = EpochStats(), PendingBatches()
        batches = len(self.train_loader)
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        for batch, (images, labels) in enumerate(self.train_loader, start=1):
            share = self._share(batch, len(labels))
            if share is None:
                continue
            images, labels = batch_arrays(images, labels, self.device)
            logits = self.model(images)
            loss = cross_entropy(logits, labels)  # labels from the host: checked there, copied once
            pending.add(batch, loss, logits, labels)
            read = batch % self.sync_every == 0 or batch == batches
            if read:
                self._take(pending, stats, epoch)
            self.optimizer.zero_grad()
            (loss if share == 1 else loss * share).backward()
            if self.communicator is not None:
                all_reduce_gradients(self.model.parameters(), self.communicator)
            self.optimizer.step()
            if read:
                self.callbacks.on_batch(epoch, batch, stats.loss, stats.accuracy, stats.seen / (time.perf_counter() - start))
        self._take(pending, stats, epoch)  # batches left unread when the last one was skipped
        if self.communicator is not None:
            self._average_buffers()
        seconds = time.perf_counter() - start
        if self.scheduler is not None:
            self.scheduler.step()
        metrics = {"epoch": epoch, "train_loss": stats.loss, "train_accuracy": stats.accuracy}
        if self.test_loader is not None:
            self.callbacks.on_evaluate_start(epoch, len(self.test_loader))
            metrics["test_loss"], metrics["test_accuracy"] = evaluate(
                self.model, self.test_loader, self.device, communicator=self.communicator)
        metrics.update(seconds=seconds, images_per_second=stats.seen / seconds, lr=lr)
        self._save(metrics)
        self.callbacks.on_epoch_end(metrics)
        return metrics

    def _share(self, batch: int, size: int) -> float | None:
        """This rank's part of batch `batch`'s loss: its images over the whole batch's (1 in one process),
        or None for a batch with fewer images than ranks, which every rank skips."""
        if self.communicator is None:
            return 1.0
        whole = self.train_loader.batch_size_of(batch - 1)
        return None if whole < self.communicator.size else size / whole

    def _take(self, pending: PendingBatches, stats: EpochStats, epoch: int) -> None:
        """Add the pending batches (summed over the ranks) to `stats`, stopping at the first whose
        loss is not finite."""
        for batch, loss, correct, size in summed_over_ranks(pending.read(), self.communicator):
            if not math.isfinite(loss):
                raise self._on_every_rank(NonFiniteLossError(
                    f"the loss became {loss} at epoch {epoch}, batch {batch}: training stopped. Lower the "
                    f"learning rate (--lr) or check the data; {self._kept()}"
                ))
            stats.add(loss, correct, size)

    def _average_buffers(self) -> None:
        """Make every rank's floating-point buffers (batch norm's running statistics) their mean over ranks."""
        for buffer in self.model.buffers():
            if buffer is not None and buffer.data.dtype.kind == "f":
                xp = backend.get_array_module(buffer.data)
                total = xp.ascontiguousarray(buffer.data)
                self.communicator.all_reduce(total)
                buffer.data[...] = total / self.communicator.size

    def _on_every_rank(self, error: Exception) -> Exception:
        """`error`, marked as raised by every rank at once (their metrics and weights are the same), so
        that no rank aborts the job over it."""
        if self.communicator is not None:
            from minicnn.distributed.guard import mark_raised_on_every_rank

            mark_raised_on_every_rank(error)
        return error

    def _kept(self) -> str:
        """What a stopped run leaves: the checkpoint of the last finished epoch, if any."""
        if self.run_folder is None:
            return "nothing was saved (no run folder: give mc.fit an out= folder to keep checkpoints)"
        if not self.epoch:
            return "no epoch had finished, so there is no checkpoint"
        return f"the last good checkpoint (epoch {self.epoch}) is kept in {self.run_folder.last}"

    def _save(self, metrics: dict) -> None:
        """Record the epoch in the run folder (its metrics, then its checkpoints: see the module's
        docstring); refuse weights or buffers that are not finite."""
        model_state = self.model.state_dict()
        broken = first_non_finite(model_state)
        if broken is not None:
            raise self._on_every_rank(NonFiniteWeightsError(
                f"'{broken}' became NaN or infinite during epoch {metrics['epoch']} (the loss was still finite): "
                f"training stopped without saving it. Lower the learning rate (--lr); {self._kept()}"
            ))
        self.epoch = metrics["epoch"]
        accuracy = metrics.get("test_accuracy")
        improved = accuracy is None or accuracy > self.best_accuracy
        if improved:
            self.best_epoch = self.epoch
            self.best_accuracy = self.best_accuracy if accuracy is None else accuracy
        if self.run_folder is not None:
            state = {**self.state(), "metrics": metrics}
            self.run_folder.record_epoch(metrics, model_state, self.optimizer.state_dict(), state, improved)
