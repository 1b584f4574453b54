"""A training run from a configuration: model, data, optimizer, schedule, output folder, resume.

`train(TrainConfig(model="lenet5"))` is what `minicnn train lenet5` does; `resume(run_dir)` continues
a stopped run from its `last` checkpoint; `evaluate_checkpoint` and `predict` use a finished one.
The run folder holds config.json, metrics.jsonl, last.npz/.json and best.npz/.json; it is locked for
the run's life, and a new run goes only where it replaces nothing but an earlier run (run_folder).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from minicnn import backend, data, nn, optim
from minicnn.autograd import Tensor, no_grad
from minicnn.data.dataset import pixels_to_float
from minicnn.functional import softmax
from minicnn.kernels import native
from minicnn.plugins import create_model
from minicnn.spec import build_model, is_spec_path, load_spec
from minicnn.train.checkpoint import CheckpointError, first_non_finite, load_checkpoint
from minicnn.train.compatibility import check_model_fits
from minicnn.train import run_folder
from minicnn.train.config import DEFAULT_LR, TrainConfig
from minicnn.train.files import write_atomically
from minicnn.train.trainer import Callbacks, Trainer, evaluate

# Test-set batches: large enough to keep per-batch overhead small, small enough that evaluating
# LeNet-5 adds about 5 MB of activations rather than 20 (the whole training process stays near
# 130 MB on MNIST).
EVAL_BATCH_SIZE = 256


@dataclass
class RunResult:
    """What a call to `train` or `resume` did: `history` holds the epochs it ran, `best_accuracy` the
    best test accuracy of the whole run, epochs before a resume included (None before any epoch)."""

    out_dir: Path
    history: list
    dataset: str
    fallback_reason: str | None = None
    best_accuracy: float | None = None


def _load_split(name: str, split: str, data_dir: str | None, progress):
    options = {"progress": progress} if progress is not None else {}
    if data_dir:
        options["data_dir"] = data_dir
    return data.load_dataset(name, split, **options)


def _datasets(config: TrainConfig, progress, notify: Callable[[str], None]):
    """(train, test, dataset name, fallback reason) following the fallback rule of TrainConfig."""

    def splits(name, progress):
        return _load_split(name, "train", config.data_dir, progress), _load_split(name, "test", config.data_dir, progress)

    if config.dataset is not None:
        return *splits(config.dataset, progress), config.dataset, None
    try:
        return *splits("mnist", progress), "mnist", None
    except data.DataUnavailableError as error:
        reason = f"{error}\nTraining on the bundled 'digits' dataset instead (pass --dataset to choose)."
        notify(reason)
        return *splits("digits", None), "digits", reason


def _model(config: TrainConfig, num_classes: int, in_channels: int):
    if is_spec_path(config.model):  # built from the path, so that its errors name the file
        return build_model(config.model), {"spec": load_spec(config.model)[0]}
    options = {"num_classes": num_classes, "in_channels": in_channels, **config.model_options}
    return create_model(config.model, **options), {"model_options": options}


def _optimizer(config: TrainConfig, model):
    """The optimizer and the per-epoch scheduler `config` names (its names are checked when it is made)."""
    lr = config.lr if config.lr is not None else DEFAULT_LR.get(config.optimizer)
    if config.optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay,
                        nesterov=config.momentum > 0)
    else:
        opt = optim.Adam(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        return opt, optim.CosineAnnealingLR(opt, T_max=config.epochs)
    if config.schedule == "step":
        return opt, optim.StepLR(opt, step_size=max(config.epochs // 3, 1), gamma=0.1)
    return opt, None


def _transforms(train_set, config: TrainConfig, normalize: dict):
    channels, height, width = train_set.input_size
    steps = []
    if config.augment:
        steps.append(data.transforms.RandomCrop((height, width), padding=max(height // 8, 1)))
        if channels == 3:
            steps.append(data.transforms.RandomHorizontalFlip())
    steps.append(data.transforms.Normalize(normalize["mean"], normalize["std"]))
    return data.transforms.Compose(steps)


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


def _prepare(config: TrainConfig, progress=None, notify=print, callbacks=None, normalize: dict | None = None):
    """Everything a run needs, built from its configuration (also when resuming, with the
    checkpoint's `normalize` statistics rather than a second pass over the training set)."""
    config.validate()
    target = backend.device(config.device)
    if target.type == "cuda":  # CuPy allocates on the current device: make it the run's (cuda:N)
        backend.check_cuda_device(target).cuda.Device(target.index).use()
    train_set, test_set, dataset_name, fallback = _datasets(config, progress, notify)
    config.dataset = dataset_name
    if config.out is None:  # named after the dataset actually used (digits when MNIST was not found)
        name = Path(config.model).stem if is_spec_path(config.model) else config.model
        config.out = str(Path("runs") / f"{name}-{dataset_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if config.limit_train:
        train_set = data.ArrayDataset(train_set.images[: config.limit_train], train_set.labels[: config.limit_train], train_set.classes)
    normalize = normalize or channel_statistics(train_set)
    train_set.transform = _transforms(train_set, config, normalize)
    test_set.transform = data.transforms.Normalize(normalize["mean"], normalize["std"])
    backend.manual_seed(config.seed)
    model, model_meta = _model(config, train_set.num_classes, train_set.input_size[0])
    nn.fuse_conv_relu(model)
    model.to(target)
    check_model_fits(model, config.model, train_set.input_size, train_set.num_classes, dataset_name)
    optimizer, scheduler = _optimizer(config, model)
    meta = {
        "model": config.model, **model_meta, "dataset": dataset_name, "classes": list(train_set.classes),
        "input_size": list(train_set.input_size), "normalize": normalize, "config": asdict(config),
    }
    trainer = Trainer(
        model, optimizer,
        data.DataLoader(train_set, config.batch_size, shuffle=True, seed=config.seed),
        data.DataLoader(test_set, EVAL_BATCH_SIZE),
        config.out, scheduler=scheduler, device=target, meta=meta, callbacks=callbacks,
    )
    return trainer, dataset_name, fallback


def train(config: TrainConfig, callbacks: Callbacks | None = None, progress=None, notify=print,
          overwrite: bool = False) -> RunResult:
    """Run a training from scratch into config.out: a new or empty folder, or with `overwrite` one
    holding an earlier run, whose files are replaced (see minicnn.train.run_folder)."""
    native.configure_threads()
    if config.seed is None:
        config.seed = int(np.random.SeedSequence().entropy % 2**31)
    if config.out is not None:  # a folder that cannot be used is refused before any data is read
        run_folder.check_new(Path(config.out), overwrite)
    trainer, dataset_name, fallback = _prepare(config, progress, notify, callbacks)
    out = Path(config.out)
    with run_folder.claim_new(out, overwrite):
        settings = (json.dumps(asdict(config), indent=2) + "\n").encode("utf-8")
        write_atomically({out / "config.json": lambda file: file.write(settings),
                          out / "metrics.jsonl": lambda file: None})
        history = trainer.fit(config.epochs)
    return _result(trainer, history, dataset_name, fallback)


def resume(run_dir, callbacks: Callbacks | None = None, progress=None, notify=print, epochs: int | None = None) -> RunResult:
    """Continue a run from run_dir/last.npz to its configured number of epochs (or `epochs`); a run
    stopped before its first checkpoint starts again from epoch 1, with its seed."""
    native.configure_threads()
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a minicnn run folder (no config.json): give the --out folder of a run")
    config = _read_config(config_path)  # before the lock: a folder that is not a run's is left untouched
    with run_folder.claim_existing(run_dir):
        config.out = str(run_dir)
        if epochs is not None:
            config.epochs = epochs
        checkpoint = None
        if (run_dir / "last.npz").exists():
            checkpoint = load_checkpoint(run_dir / "last.npz")
        else:
            notify(f"{run_dir} has no checkpoint yet (the run stopped during its first epoch): starting again from epoch 1")
        normalize = checkpoint.meta.get("normalize") if checkpoint else None
        trainer, dataset_name, _ = _prepare(config, progress, notify, callbacks, normalize)
        if checkpoint is not None:
            trainer.restore(checkpoint)
        _truncate_metrics(run_dir / "metrics.jsonl", checkpoint.meta if checkpoint else None)
        history = trainer.fit(config.epochs)
    return _result(trainer, history, dataset_name)


def _result(trainer: Trainer, history: list, dataset_name: str, fallback: str | None = None) -> RunResult:
    best = trainer.best_accuracy if trainer.epoch else None
    return RunResult(trainer.out_dir, history, dataset_name, fallback, best)


def _read_config(path: Path) -> TrainConfig:
    """The settings a run saved; a ValueError naming the file when it was cut short or edited, a
    FileNotFoundError when it is not a minicnn run's."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"it holds a JSON {type(values).__name__}, not an object")
    except (UnicodeDecodeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise _unreadable(path, error) from None
    missing = sorted(run_folder.CONFIG_KEYS - set(values))
    if missing:  # someone else's config.json: never train into their folder
        raise FileNotFoundError(f"{path.parent} is not a minicnn run folder ({path.name} has no {', '.join(missing)}): "
                                "give the --out folder of a run")
    try:
        return TrainConfig.from_dict(values)
    except (ValueError, TypeError) as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> ValueError:
    return ValueError(f"{path} cannot be read as the run's settings ({error}): it was cut short or edited. Put the "
                      "settings back (last.json keeps a copy under \"config\"), or start the run again with --overwrite")


def _truncate_metrics(path: Path, meta: dict | None) -> None:
    """Keep the metrics of the epochs the checkpoint covers, none without a checkpoint (a run killed
    after writing a line but before its checkpoint would otherwise log that epoch twice)."""
    kept = []
    if meta is not None:
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            try:
                if json.loads(line)["epoch"] < meta["epoch"]:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):  # a line torn by a crash mid-write
                continue
        kept.append(json.dumps(meta["metrics"]))
    text = "".join(line + "\n" for line in kept).encode("utf-8")
    write_atomically({path: lambda file: file.write(text)})


def model_from_checkpoint(path):
    """(model in eval mode, checkpoint metadata) from a checkpoint file; one whose weights hold a NaN
    or an infinity is refused, since every prediction it made would be meaningless."""
    checkpoint = load_checkpoint(path)
    broken = first_non_finite(checkpoint.model)
    if broken is not None:
        raise CheckpointError(f"checkpoint {path}: weight '{broken}' holds NaN or infinite values, so the model's "
                              "outputs would be meaningless; use a checkpoint from before training diverged")
    meta = checkpoint.meta
    model = build_model(meta["spec"]) if "spec" in meta else create_model(meta["model"], **meta.get("model_options", {}))
    model.load_state_dict(checkpoint.model)
    return model.eval(), meta


def evaluate_checkpoint(path, dataset: str | None = None, data_dir: str | None = None, progress=None) -> dict:
    """Test loss and accuracy of a checkpoint on its dataset's test split (or another dataset's)."""
    model, meta = model_from_checkpoint(path)
    name = dataset or meta["dataset"]
    test_set = _load_split(name, "test", data_dir, progress)
    if tuple(test_set.input_size) != tuple(meta["input_size"]):
        raise ValueError(f"dataset '{name}' has images of {test_set.input_size} but the model was trained on {tuple(meta['input_size'])}")
    test_set.transform = data.transforms.Normalize(meta["normalize"]["mean"], meta["normalize"]["std"])
    loss, accuracy = evaluate(model, data.DataLoader(test_set, EVAL_BATCH_SIZE))
    return {"dataset": name, "images": len(test_set), "test_loss": loss, "test_accuracy": accuracy}


def model_inputs(images: list, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """Image files (PNG or JPEG) as a checkpoint's model sees them.

    meta: the checkpoint's metadata (input_size, normalize). Returns the pixels (N, C, H, W) uint8,
    resized to the model's input, and the batch (N, C, H, W) float32, scaled to [0, 1] and
    normalised as in training.
    """
    from minicnn.data.image_folder import read_image

    channels, height, width = meta["input_size"]
    pixels = np.stack([read_image(image, (height, width), channels) for image in images])
    batch = data.transforms.Normalize(meta["normalize"]["mean"], meta["normalize"]["std"])(pixels_to_float(pixels))
    return pixels, batch


def predict(path, images: list) -> list[dict]:
    """Class and probability for each image file (PNG or JPEG), resized to the model's input."""
    model, meta = model_from_checkpoint(path)
    _, batch = model_inputs(images, meta)
    with no_grad():
        probabilities = softmax(model(Tensor(batch)), 1).numpy()
    best = probabilities.argmax(axis=1)
    return [
        {"image": str(image), "class": meta["classes"][k], "index": int(k), "probability": float(probabilities[i, k])}
        for i, (image, k) in enumerate(zip(images, best))
    ]
