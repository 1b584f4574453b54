"""`mc.fit` and `mc.evaluate`: train and test any `mc.nn.Module` on your own data from Python.

    model = MyNet()
    history = mc.fit(model, (images, labels), (test_images, test_labels), epochs=5, out="runs/mine")
    print(history[-1]["test_accuracy"], mc.evaluate(model, (test_images, test_labels)))

fit runs the loop of `minicnn train` (`Trainer`: its non-finite-loss guard, metrics and checkpoints)
with the settings of `TrainConfig`, whose field defaults are fit's defaults. Data come in the four
kinds of `minicnn.train.fit_data`. As `minicnn train` does, fit normalises adjustable data with the
per-channel mean and standard deviation of the training images (normalize=False: as given), and
keeps the statistics on the model as `model.input_normalization`, so that `evaluate(model, data)`
sees test images as training did; the checkpoints record them for `minicnn evaluate` and `predict`.

Without `out` nothing is written: the model object is the result. With `out`, the run folder is
the one `minicnn train` writes; the CLI can rebuild the model from its checkpoints when it is what
`mc.create_model(name, ...)` built (same weights' names and shapes), and otherwise refuses,
saying to load the weights in Python. `resume=RUN` continues a run with the model object given.

`distributed=True` makes this call one rank of a data-parallel job started by mpiexec (every rank
runs the same script): see minicnn.train.run and docs/distributed.md. The model is built by every
rank; rank 0's weights are given to all, rank 0 alone writes `out`, and every rank returns the same
history. An error on one rank alone ends the job (minicnn.distributed.abort_on_error).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np

from minicnn import backend
from minicnn.data import ArrayDataset
from minicnn.kernels import settings
from minicnn.nn import Module
from minicnn.train.checkpoint import Checkpoint
from minicnn.train.compatibility import check_model_fits
from minicnn.train.config import TrainConfig, default
from minicnn.train.fit_data import GivenData, given_data
from minicnn.train.progress import TextProgress
from minicnn.train.ranks import Ranks
from minicnn.train.run import (EVAL_BATCH_SIZE, build_optimizer, claim_run_folder, channel_statistics, evaluation_transform, is_unit,
                               training_transform, unit_statistics)
from minicnn.train.run_folder import RunFolder
from minicnn.train.trainer import Trainer, evaluate as evaluate_batches

SETTINGS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "augment", "seed",
            "normalize", "sync_bn")


class Default:
    """A setting left out of a call to fit: TrainConfig's default for a new run, the run's own value
    when resuming. Its repr is the default, so `help(mc.fit)` shows the values."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return repr(default(self.name))


def fit(model: Module, train, test=None, *, epochs: int = Default("epochs"), batch_size: int = Default("batch_size"),
        optimizer: str = Default("optimizer"), lr: float | None = Default("lr"), momentum: float = Default("momentum"),
        weight_decay: float = Default("weight_decay"), schedule: str = Default("schedule"),
        augment: bool = Default("augment"), device: str | None = None, seed: int | None = Default("seed"),
        normalize: bool = Default("normalize"), sync_bn: bool = Default("sync_bn"), out=None, resume=None,
        overwrite: bool = False, progress: bool = True, distributed: bool = False) -> list[dict]:
    """Train `model` (in place) on `train`, testing on `test` after every epoch; returns the history:
    one dict per epoch this call ran, with the keys of the run folder's metrics.jsonl.

    train, test: a registered dataset's name, an (images, labels) pair of arrays, a minicnn Dataset
    or a DataLoader (see minicnn.train.fit_data). A name given as train with no test tests on its
    test split; with no test set the metrics have no test_loss or test_accuracy.
    epochs ... seed: as `minicnn train` (TrainConfig's defaults); seed fixes the data's order, the
    augmentation and dropout (the initial weights are the model's: call mc.manual_seed before
    building it). device: where to train; None: where the model is. normalize: see the module's
    docstring. out: a run folder to write (as `minicnn train --out`; overwrite replaces a run
    there); None writes nothing. resume: a run folder to continue with this model (its weights
    must have the checkpoint's names and shapes); the run fixes every setting, and epochs may
    extend it. progress: a line per epoch on stderr (and a live line on a terminal).
    distributed: train as one rank of the job mpiexec started (see the module's docstring); sync_bn:
    then batch-norm statistics over the whole job's batch (the model's BatchNorm layers are replaced
    in place by SyncBatchNorm).

    Raises ValueError naming the argument for a setting or data that cannot work, TypeError for a
    model or data of another kind, and the loop's NonFiniteLossError when training diverges.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a minicnn.nn.Module (your own, or mc.create_model(name)), got "
                        f"{type(model).__name__}; to train a registered model by name, run `minicnn train NAME`")
    if out is not None and resume is not None:
        raise ValueError("give out= for a new run or resume= to continue one, not both")
    given = {name: value for name, value in locals().items() if name in SETTINGS and not isinstance(value, Default)}
    settings.configure()
    ranks = Ranks(_world(distributed, device, model))
    with _stop_every_rank_on_error(ranks):
        if resume is not None:
            return _resume(model, train, test, RunFolder(resume), given, device, progress, ranks)
        config = ranks.together(TrainConfig, model=type(model).__name__, out=None if out is None else str(out), **given)
        ranks.same("settings", asdict(config))
        if config.seed is None:
            config.seed = int(np.random.SeedSequence().entropy % 2**31)
        config.seed = ranks.from_lead(config.seed)
        folder = RunFolder(out) if out is not None and ranks.lead else None
        # a folder that cannot be used is refused before any data is read (the lead's; agreed by every rank)
        ranks.together(lambda: folder is None or folder.check_new(overwrite))
        trainer = ranks.together(_trainer, model, train, test, config, device, progress, folder, None, ranks)
        ranks.start(trainer)
        with contextlib.ExitStack() as lock:
            ranks.together(claim_run_folder, lock, folder, config, overwrite)
            return trainer.fit(config.epochs)


def evaluate(model: Module, data, batch_size: int = EVAL_BATCH_SIZE) -> dict:
    """{"loss": mean cross-entropy, "accuracy": fraction correct} of `model` on `data` (any kind fit
    takes; a dataset name stands for its test split), in eval mode and without gradients, the
    model's modes restored afterwards. Images are normalised as `fit` normalised the model's
    training images (`model.input_normalization`), except in a DataLoader or a dataset with its
    own transform, which are used as given."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a minicnn.nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    given = given_data(data, "data", "test")
    transform = evaluation_transform(getattr(model, "input_normalization", None))
    loss, accuracy = evaluate_batches(model, given.batches(int(batch_size), transform), _device_of(model))
    return {"loss": loss, "accuracy": accuracy}


def _resume(model: Module, train, test, folder: RunFolder, given: dict, device, progress: bool,
            ranks: Ranks) -> list[dict]:
    """Continue the run in `folder` from its last checkpoint with the caller's model and data (rank 0
    reads the run and hands it to the other ranks).

    The run fixes its settings: one given with another value than the run's is refused, except
    epochs, which may extend the run (otherwise the epochs of its last checkpoint's settings).
    """
    with contextlib.ExitStack() as lock:
        found = ranks.lead_together(_open_run, lock, model, folder, given)
        config, checkpoint = ranks.from_lead(found)
        statistics = checkpoint.meta["normalize"] if checkpoint is not None else None
        trainer = ranks.together(_trainer, model, train, test, config, device, progress, folder if ranks.lead else None,
                                 statistics, ranks)
        ranks.start(trainer)
        if checkpoint is not None:
            trainer.restore(checkpoint)
        if ranks.lead:
            folder.truncate_metrics(checkpoint)
        return trainer.fit(config.epochs)


def _open_run(lock: contextlib.ExitStack, model: Module, folder: RunFolder, given: dict):
    """(settings, last checkpoint or None) of the run in `folder`, locked for the run's life (held by
    `lock`), with epochs extended as given; refuses other settings and a model of other weights."""
    config = folder.read_config()  # before the lock: a folder that is not a run's is left untouched
    for name, value in given.items():
        if name != "epochs" and value != getattr(config, name):
            raise ValueError(f"{name}: the run in {folder.path} has {name}={getattr(config, name)!r}, which a resume "
                             f"keeps; leave {name} out (only epochs may change, to extend the run)")
    config.out = str(folder.path)
    lock.enter_context(folder.claim_existing())
    checkpoint = folder.last_checkpoint()
    if checkpoint is not None:
        config.epochs = given.get("epochs", checkpoint.meta["config"]["epochs"])
        config.validate()
        _check_resumable(model, checkpoint, folder, config)
    elif "epochs" in given:
        config.epochs = given["epochs"]
        config.validate()
    return config, checkpoint


def _world(distributed: bool, device, model: Module):
    """The job's communicator when `distributed`, else None (mpi4py is imported only then)."""
    if not distributed:
        return None
    from minicnn.distributed import require_mpi4py, world

    require_mpi4py()
    return world(device if device is not None else _device_of(model))


def _stop_every_rank_on_error(ranks: Ranks):
    """In a job, an error on this rank alone ends every rank (minicnn.distributed.abort_on_error)."""
    if ranks.communicator is None:
        return contextlib.nullcontext()
    from minicnn.distributed import abort_on_error

    return abort_on_error(ranks.communicator)


def _trainer(model: Module, train, test, config: TrainConfig, device, progress: bool, folder: RunFolder | None,
             resumed_statistics: dict | None = None, ranks: Ranks = Ranks()) -> Trainer:
    """The loop over the caller's model and data, with what `minicnn train` would record.
    resumed_statistics: the normalisation of the checkpoint a resume continues from. In a job, this
    rank's part (no collective here: see minicnn.train.ranks); `folder` is the lead's."""
    train_data = given_data(train, "train", "train")
    if test is None and train_data.name is not None:
        test = train_data.name
    test_data = given_data(test, "test", "test", train_data.classes) if test is not None else None
    _check_data(train_data, test_data, config)
    target = ranks.device(device if device is not None else _device_of(model))
    if target.type == "cuda":
        backend.check_cuda_device(target).cuda.Device(target.index).use()
    reference = _registered_reference(model) if folder is not None else None
    config.dataset = train_data.name
    config.python_objects = {role: given.kind for role, given in (("train", train_data), ("test", test_data))
                             if given is not None and given.name is None}
    if reference is not None:
        config.model, config.model_options = reference["model"], reference["model_options"]
    else:
        config.python_objects["model"] = f"{type(model).__module__}.{type(model).__qualname__}"
    config.device = str(target)
    backend.manual_seed(config.seed)
    if config.sync_bn:
        ranks.synchronized_batch_norm(model)
    model.to(target)
    check_model_fits(model, config.model, train_data.input_size, len(train_data.classes), train_data.name or "train")
    statistics = _statistics(train_data, config, resumed_statistics)
    model.input_normalization = statistics
    optimizer, scheduler = build_optimizer(config, model)
    channels = train_data.input_size[0]
    meta = {
        "model": config.model, "dataset": config.dataset, "classes": [str(c) for c in train_data.classes],
        "input_size": list(train_data.input_size), "normalize": statistics or unit_statistics(channels),
        "config": asdict(config),
    }
    if reference is not None:
        meta["model_options"] = reference["model_options"]
    else:
        meta["python_model"] = config.python_objects["model"]
    train_transform = training_transform(train_data.input_size, config.augment, statistics)
    return Trainer(
        model, optimizer,
        train_data.batches(config.batch_size, train_transform, shuffle=True, seed=config.seed, part=ranks.part),
        None if test_data is None else test_data.batches(EVAL_BATCH_SIZE, evaluation_transform(statistics), part=ranks.part),
        folder.path if folder is not None else None, scheduler=scheduler, device=target, meta=meta,
        callbacks=TextProgress() if progress and ranks.lead else None, communicator=ranks.communicator,
    )


def _check_data(train: GivenData, test: GivenData | None, config: TrainConfig) -> None:
    """Refuse data that cannot train together, naming the argument, before any work."""
    if not train.classes:
        raise ValueError(f"train: the {train.kind} lists no classes: give it a `classes` list (class names, "
                         "index = label)")
    if config.augment and not train.adjustable:
        raise ValueError(f"augment: train is a {train.kind} with its own batches or transform, which fit uses as "
                         "given; add the augmentation to its transform, or give fit the arrays or dataset itself")
    if test is None:
        return
    if test.input_size != train.input_size:
        raise ValueError(f"test: images of {test.input_size} but train has {train.input_size}")
    if len(test.classes) > len(train.classes):
        raise ValueError(f"test: {len(test.classes)} classes but train has {len(train.classes)}")
    if config.normalize and train.adjustable and not test.adjustable:
        raise ValueError(f"test: a {test.kind} is used as given, but fit normalises train's images, so the test "
                         "images would not match them: give test as arrays or a dataset without a transform, or "
                         "pass normalize=False and normalise both yourself")


def _statistics(train: GivenData, config: TrainConfig, resumed: dict | None) -> dict | None:
    """The normalisation fit applies (None: none): a resumed run's own, else the per-channel mean
    and standard deviation of the training images."""
    if resumed is not None:
        return None if is_unit(resumed) else resumed
    if not (config.normalize and train.adjustable):
        return None
    return channel_statistics(_with_images(train))


def _with_images(given: GivenData):
    """What channel_statistics reads, an `images` array (N, C, H, W): an ArrayDataset's own, or any
    other dataset's samples stacked (uint8 ones stay uint8, which it scales as the DataLoader does)."""
    dataset = given.dataset
    if isinstance(dataset, ArrayDataset):
        return dataset
    return SimpleNamespace(images=np.stack([np.asarray(dataset[i][0]) for i in range(len(dataset))]))


def _registered_reference(model: Module) -> dict | None:
    """{"model": name, "model_options": {...}} when `model` is what `mc.create_model(name, **options)`
    builds (the same weights' names and shapes, options that JSON can hold), so that the CLI can
    rebuild it from a checkpoint; None for any other model."""
    from minicnn.plugin.manager import create_model  # the registries sit above the loop's modules

    reference = getattr(model, "registered_as", None)
    if not isinstance(reference, dict):
        return None
    try:
        json.dumps(reference)
        fresh = create_model(reference["model"], **reference["model_options"])
    except (TypeError, ValueError, LookupError):
        return None
    return reference if _shapes(fresh) == _shapes(model) else None


def _shapes(model: Module) -> list:
    """(name, shape) of each entry of the model's state_dict, in its order."""
    return [(name, tuple(value.shape)) for name, value in model.state_dict().items()]


def _check_resumable(model: Module, checkpoint: Checkpoint, folder: RunFolder, config: TrainConfig) -> None:
    """Refuse a model whose weights are not the checkpoint's, naming the first that differs, and
    epochs fewer than the run has done."""
    done = int(checkpoint.meta["epoch"])
    if config.epochs < done:
        raise ValueError(f"epochs: the run in {folder.path} has done {done} epochs; give epochs >= {done} to extend it")
    saved = {name: tuple(np.shape(array)) for name, array in checkpoint.model.items()}
    own = dict(_shapes(model))
    for name in [*own, *saved]:
        if own.get(name) != saved.get(name):
            raise ValueError(f"model: '{name}' is {_shape_text(own.get(name))} in the model but "
                             f"{_shape_text(saved.get(name))} in the run's checkpoint ({folder.last}): resume with "
                             "the model the run trained")


def _shape_text(shape: tuple | None) -> str:
    return "absent" if shape is None else str(shape)


def _device_of(model: Module) -> backend.Device:
    first = next(iter(model.parameters()), None)
    return backend.device_of(first.data) if first is not None else backend.device("cpu")

