"""A training run from a configuration: model, data, optimizer, schedule, output folder, resume.

`train(TrainConfig(model="lenet5"))` is what `minicnn train lenet5` does; `resume(run_dir)` continues
a stopped run from its `last` checkpoint (`minicnn.inference` uses a finished one). The model comes
from `resolve_model`, the optimizer and schedule from their registries; the run folder (`RunFolder`)
is locked for the run's life, and a new run goes only where it replaces nothing but an earlier run.

Given a `communicator` of several ranks (minicnn.distributed), every rank calls the same function
with the same settings and trains its part of each batch (see minicnn.train.trainer); `Ranks`
says where ranks differ: rank 0 alone reads and writes the run folder and reports, setup failures
stop every rank, and ranks started with different settings, data or models are refused.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from minicnn import backend, data, nn
from minicnn.kernels import settings
from minicnn.plugin.manager import create_optimizer, create_schedule, model_entry
from minicnn.tools.spec import build_model
from minicnn.train.compatibility import check_model_fits
from minicnn.train.config import TrainConfig
from minicnn.train.models import reference_kind, resolve_model
from minicnn.train.ranks import Ranks
from minicnn.train.run_folder import RunFolder
from minicnn.train.trainer import Callbacks, Trainer

# Test-set batches: large enough to keep per-batch overhead small, small enough that evaluating
# LeNet-5 adds about 5 MB of activations rather than 20 (the whole training process stays near
# 130 MB on MNIST).
EVAL_BATCH_SIZE = 256
TRAINABLE = ("spec", "name")  # the model references a run starts from (see minicnn.train.models)


@dataclass
class RunResult:
    """What a call to `train` or `resume` did: `history` holds the epochs it ran, `best_accuracy` the
    best test accuracy of the whole run, epochs before a resume included (None before any epoch)."""

    out_dir: Path
    history: list
    dataset: str
    fallback_reason: str | None = None
    best_accuracy: float | None = None


def load_split(name: str, split: str, data_dir: str | None = None, progress=None):
    """One split of a registered dataset, from `data_dir` when given, downloads drawn by `progress`."""
    options = {"progress": progress} if progress is not None else {}
    if data_dir:
        options["data_dir"] = data_dir
    return data.load_dataset(name, split, **options)


def _datasets(config: TrainConfig, progress, notify: Callable[[str], None]):
    """(train, test, dataset name, fallback reason) following the fallback rule of TrainConfig."""

    def splits(name, progress):
        return load_split(name, "train", config.data_dir, progress), load_split(name, "test", config.data_dir, progress)

    if config.dataset is not None:
        return *splits(config.dataset, progress), config.dataset, None
    try:
        return *splits("mnist", progress), "mnist", None
    except data.DataUnavailableError as error:
        reason = f"{error}\nTraining on the bundled 'digits' dataset instead (pass --dataset to choose)."
        notify(reason)
        return *splits("digits", None), "digits", reason


def build_optimizer(config: TrainConfig, model):
    """The optimizer and the per-epoch scheduler `config` names (its names are checked when it is made)."""
    optimizer = create_optimizer(config.optimizer, model.parameters(), lr=config.lr, momentum=config.momentum,
                                 weight_decay=config.weight_decay)
    return optimizer, create_schedule(config.schedule, optimizer, epochs=config.epochs)


def training_transform(input_size: tuple, augment: bool, normalize: dict | None):
    """The batch transform of the training images (C, H, W): random crops (and flips for colour
    images) when `augment`, then `normalize`'s statistics (none when None); None when it is empty."""
    channels, height, width = input_size
    steps = []
    if augment:
        steps.append(data.transforms.RandomCrop((height, width), padding=max(height // 8, 1)))
        if channels == 3:
            steps.append(data.transforms.RandomHorizontalFlip())
    if normalize is not None:
        steps.append(evaluation_transform(normalize))
    return data.transforms.Compose(steps) if steps else None


def evaluation_transform(normalize: dict | None):
    """The batch transform of the test images: `normalize`'s statistics, or None."""
    return data.transforms.Normalize(normalize["mean"], normalize["std"]) if normalize is not None else None


def unit_statistics(channels: int) -> dict:
    """Statistics that leave images as they are (mean 0, std 1): what a run with normalize=False
    records, so that evaluate and predict, which always normalise, see the images it trained on."""
    return {"mean": [0.0] * channels, "std": [1.0] * channels}


def is_unit(normalize: dict) -> bool:
    """Whether `normalize` leaves images as they are (see unit_statistics)."""
    return all(m == 0 for m in normalize["mean"]) and all(s == 1 for s in normalize["std"])


def channel_statistics(dataset, chunk: int = 1024) -> dict:
    """Per-channel mean and standard deviation of a dataset's images (N, C, H, W), in [0, 1] units.

    Two passes (the mean, then the squared deviations from it) over slices of `chunk` images in
    float64, so a uint8 dataset is never copied whole as floats (MNIST would take 188 MB).
    """
    images = dataset.images
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    count = images.shape[0] * images.shape[2] * images.shape[3]
    slices = [slice(start, start + chunk) for start in range(0, images.shape[0], chunk)]
    mean = sum(images[s].sum(axis=(0, 2, 3), dtype=np.float64) for s in slices) / (count * scale)
    squares = np.zeros_like(mean)
    for s in slices:
        deviation = images[s].astype(np.float64)
        deviation /= scale
        deviation -= mean[:, None, None]
        squares += np.einsum("nchw,nchw->c", deviation, deviation)
    return {"mean": mean.tolist(), "std": (np.sqrt(squares / count) + 1e-8).tolist()}


def _prepare(config: TrainConfig, progress=None, notify=print, callbacks=None, normalize: dict | None = None,
             ranks: Ranks = Ranks()):
    """Everything a run needs, built from its configuration (also when resuming, with the
    checkpoint's `normalize` statistics rather than a second pass over the training set); in a
    job, this rank's part of it (no collective here: see minicnn.train.ranks)."""
    config.validate()
    target = ranks.device(config.device)
    if target.type == "cuda":  # CuPy allocates on the current device: make it the run's (cuda:N)
        backend.check_cuda_device(target).cuda.Device(target.index).use()
    train_set, test_set, dataset_name, fallback = _datasets(config, progress, notify)
    config.dataset = dataset_name
    if config.out is None:  # named after the dataset actually used (digits when MNIST was not found)
        name = Path(config.model).stem if reference_kind(config.model, TRAINABLE) == "spec" else config.model
        config.out = str(Path("runs") / f"{name}-{dataset_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if config.limit_train:
        train_set = data.ArrayDataset(train_set.images[: config.limit_train], train_set.labels[: config.limit_train], train_set.classes)
    if normalize is None:
        normalize = channel_statistics(train_set) if config.normalize else unit_statistics(train_set.input_size[0])
    applied = None if is_unit(normalize) else normalize
    train_set.transform = training_transform(train_set.input_size, config.augment, applied)
    test_set.transform = evaluation_transform(applied)
    backend.manual_seed(config.seed)
    fit = {"num_classes": train_set.num_classes, "in_channels": train_set.input_size[0], **config.model_options}
    model, model_meta = resolve_model(config.model, accept=TRAINABLE, defaults=fit)
    if config.sync_bn:
        model = ranks.synchronized_batch_norm(model)
    nn.fuse_conv_relu(model)
    model.to(target)
    check_model_fits(model, config.model, train_set.input_size, train_set.num_classes, dataset_name)
    optimizer, scheduler = build_optimizer(config, model)
    meta = {
        "model": config.model, **model_meta, "dataset": dataset_name, "classes": list(train_set.classes),
        "input_size": list(train_set.input_size), "normalize": normalize, "config": asdict(config),
    }
    trainer = Trainer(
        model, optimizer,
        data.DataLoader(train_set, config.batch_size, shuffle=True, seed=config.seed, part=ranks.part),
        data.DataLoader(test_set, EVAL_BATCH_SIZE, part=ranks.part),
        config.out if ranks.lead else None, scheduler=scheduler, device=target, meta=meta, callbacks=callbacks,
        communicator=ranks.communicator,
    )
    return trainer, dataset_name, fallback


def train(config: TrainConfig, callbacks: Callbacks | None = None, progress=None, notify=print,
          overwrite: bool = False, communicator=None) -> RunResult:
    """Run a training from scratch into config.out: a new or empty folder, or with `overwrite` one
    holding an earlier run, whose files are replaced (see minicnn.train.run_folder). With a
    `communicator`, as one rank of a data-parallel job (see the module's docstring)."""
    settings.configure()
    ranks = Ranks(communicator)
    callbacks, progress, notify = ranks.reporters(callbacks, progress, notify)
    ranks.same("settings", {key: value for key, value in asdict(config).items() if key != "data_dir"})
    ranks.together(_check_new, config, overwrite, ranks.lead)
    config.seed = ranks.from_lead(config.seed)
    trainer, dataset_name, fallback = ranks.together(_prepare, config, progress, notify, callbacks, ranks=ranks)
    config.out = ranks.from_lead(config.out)
    ranks.start(trainer)
    with contextlib.ExitStack() as lock:
        ranks.together(claim_run_folder, lock, trainer.run_folder, config, overwrite)
        history = trainer.fit(config.epochs)
    return _result(trainer, history, dataset_name, fallback, config.out)


def _check_new(config: TrainConfig, overwrite: bool, lead: bool) -> None:
    """Refuse, before any data is read, a run folder that cannot be used (the lead's) and a model
    that is not there; draw the seed when none was given (the lead's is the job's)."""
    if config.seed is None:
        config.seed = int(np.random.SeedSequence().entropy % 2**31)
    if config.out is not None and lead:
        RunFolder(config.out).check_new(overwrite)
    _check_model(config.model)


def claim_run_folder(lock: contextlib.ExitStack, folder: RunFolder | None, config: TrainConfig, overwrite: bool) -> None:
    """Lock a new run's folder for the run's life (held by `lock`) and record its settings (the lead's)."""
    if folder is not None:
        lock.enter_context(folder.claim_new(overwrite))
        folder.start(config)


def resume(run_dir, callbacks: Callbacks | None = None, progress=None, notify=print, epochs: int | None = None,
           communicator=None) -> RunResult:
    """Continue a run from its last checkpoint to its configured number of epochs (or `epochs`); a run
    stopped before its first checkpoint starts again from epoch 1, with its seed. With a
    `communicator`, as one rank of a job of any size: rank 0 reads the run and hands it to the others."""
    settings.configure()
    ranks = Ranks(communicator)
    callbacks, progress, notify = ranks.reporters(callbacks, progress, notify)
    folder = RunFolder(run_dir)
    with contextlib.ExitStack() as lock:
        found = ranks.lead_together(_open_run, lock, folder, epochs)
        config, checkpoint = ranks.from_lead(found)
        done = int(checkpoint.meta["epoch"]) if checkpoint is not None else 0
        if checkpoint is None:
            notify(f"{folder.path} has no checkpoint yet (the run stopped during its first epoch): starting again from epoch 1")
        else:
            notify(f"resuming {folder.path} from epoch {done} of {config.epochs}")
        normalize = checkpoint.meta.get("normalize") if checkpoint else None
        trainer, dataset_name, _ = ranks.together(_prepare, config, progress, notify, callbacks, normalize, ranks)
        ranks.start(trainer)
        if checkpoint is not None:
            trainer.restore(checkpoint)
        if ranks.lead:
            folder.truncate_metrics(checkpoint)
        history = trainer.fit(config.epochs)
    return _result(trainer, history, dataset_name, out=config.out)


def _open_run(lock: contextlib.ExitStack, folder: RunFolder, epochs: int | None):
    """(settings, last checkpoint or None) of the run in `folder`, locked for the run's life (held by
    `lock`), its epochs extended to `epochs`; refuses a run that only Python can continue, or fewer
    epochs than it has done."""
    config = folder.read_config()  # before the lock: a folder that is not a run's is left untouched
    if config.python_objects:
        given = ", ".join(f"{role}: {what}" for role, what in config.python_objects.items())
        raise ValueError(f"{folder.path} was trained with mc.fit on Python objects ({given}), which only "
                         f"Python can give again: resume it with mc.fit(model, train, test, resume=\"{folder.path}\")")
    lock.enter_context(folder.claim_existing())
    config.out = str(folder.path)
    if epochs is not None:
        config.epochs = epochs
    checkpoint = folder.last_checkpoint()
    done = int(checkpoint.meta["epoch"]) if checkpoint is not None else 0
    if epochs is not None and epochs < done:
        raise ValueError(f"epochs (--epochs) {epochs} is fewer than the {done} that {folder.path} has done: "
                         f"give {done} or more to extend it")
    return config, checkpoint


def _check_model(reference: str) -> None:
    """Refuse a model that is not there (an unknown name, with its did-you-mean; a spec file missing or
    broken) before any data is looked for: a typo should cost no search for MNIST, nor a download."""
    if reference_kind(reference, TRAINABLE) == "spec":
        build_model(reference)
    else:
        model_entry(reference)


def _result(trainer: Trainer, history: list, dataset_name: str, fallback: str | None = None, out: str = "") -> RunResult:
    best = trainer.best_accuracy if trainer.epoch else None
    return RunResult(Path(out), history, dataset_name, fallback, best)
