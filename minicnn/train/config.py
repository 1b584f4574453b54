"""`TrainConfig`: every setting of a run, checked when it is made.

A setting that cannot work (a NaN learning rate, `limit_train=0`, an unknown optimizer) is refused
here, with the setting, the value and what is expected, before any data is read or any folder is
made: a run that would train on nothing, or on all 60,000 images when the user asked for none, or
whose weights are NaN from the first step, is worse than no run. Optimizers and schedules are
names in their registries (`minicnn.plugin.manager`), so a plugin's are checked like minicnn's own.

The class's field defaults are the defaults of every front end: `default(name)` reads one without
making (and so checking) a config, which the CLI's options use.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, dataclass, field, fields

from minicnn import backend
from minicnn.plugin.manager import optimizer_entry, plugin_system
from minicnn.plugin.registry import did_you_mean


@dataclass
class TrainConfig:
    """Every setting of a run; saved as config.json so the run can be resumed and repeated.

    dataset None means the model's usual data, MNIST, falling back to the bundled "digits" dataset
    when MNIST can be neither found nor downloaded (a dataset named explicitly never falls back).
    python_objects describes what a run of `mc.fit` was given as Python objects rather than names,
    which only Python can give again (`{"model": "mypackage.MyNet", "train": "arrays"}`); `model`
    then holds the class's name and `dataset` None or the name the data came from. Empty for a run
    of `minicnn train`.
    Raises ValueError (naming the setting) for a value that cannot work; `validate()` checks again
    after a setting is changed.
    """

    model: str = "lenet5"
    dataset: str | None = None
    data_dir: str | None = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None          # None: the optimizer's registered default_lr (0.03 for sgd, 1e-3 for adam)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"         # cosine, step (x0.1 every third of the run), none, or a plugin's
    augment: bool = False            # random crops (and flips for colour images)
    device: str = "cpu"
    seed: int | None = None          # None: drawn at random, then recorded
    out: str | None = None           # None: runs/<model>-<dataset>-<time>
    limit_train: int | None = None   # train on the first N images only (quick experiments)
    model_options: dict = field(default_factory=dict)
    normalize: bool = True           # per-channel mean and std of the training images; False: as given
    python_objects: dict = field(default_factory=dict)  # what mc.fit was given as objects (docstring)
    sync_bn: bool = False            # distributed runs: batch-norm statistics over the global batch

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def validate(self) -> None:
        """Raise ValueError for the first setting that cannot work, naming it and what it takes."""
        _whole(self, "epochs", minimum=1)
        _whole(self, "batch_size", minimum=1)
        if self.limit_train is not None:
            _whole(self, "limit_train", minimum=1, hint="leave it out to train on every image")
        if self.seed is not None:
            _whole(self, "seed", minimum=0, hint="or leave it out for a random one")
        _registered(self, "optimizer", "optimizers")
        _registered(self, "schedule", "schedules")
        if self.lr is not None:
            _finite(self, "lr", hint=f"the default is {optimizer_entry(self.optimizer).default_lr:g} for {self.optimizer}")
        _finite(self, "momentum")
        _finite(self, "weight_decay", hint="0 turns it off")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a registered model name or a .toml spec path, got {self.model!r}")
        if not isinstance(self.model_options, dict):
            raise ValueError(f"model_options must be a dict of keyword arguments, got {self.model_options!r}")
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be True or False, got {self.normalize!r}")
        if not isinstance(self.sync_bn, bool):
            raise ValueError(f"sync_bn must be True or False, got {self.sync_bn!r}")
        if not isinstance(self.python_objects, dict):
            raise ValueError(f"python_objects must be a dict, got {self.python_objects!r}")
        backend.device(self.device)


def default(name: str):
    """The default value of the setting `name` (a field of TrainConfig)."""
    found = {f.name: f for f in fields(TrainConfig)}[name]
    return found.default_factory() if found.default is MISSING else found.default


def _setting(name: str) -> str:
    """How the CLI spells a setting: --batch-size for batch_size."""
    return f"{name} (--{name.replace('_', '-')})"


def _whole(config: TrainConfig, name: str, minimum: int, hint: str = "") -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{_setting(name)} must be a whole number >= {minimum}, got {value!r}"
                         + (f"; {hint}" if hint else ""))


def _finite(config: TrainConfig, name: str, hint: str = "") -> None:
    value = getattr(config, name)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok:
        raise ValueError(f"{_setting(name)} must be a finite number >= 0, got {value!r}" + (f"; {hint}" if hint else ""))


def _registered(config: TrainConfig, name: str, kind: str) -> None:
    """Refuse a setting that names no registered optimizer or schedule, listing them, minicnn's own first."""
    value = getattr(config, name)
    choices = plugin_system().provided(kind)
    if value not in choices:
        listed = " or ".join(filter(None, [", ".join(choices[:-1]), choices[-1]]))
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        raise ValueError(f"unknown {name} {value!r}: use {listed} (`minicnn {kind}` lists them){hint}")
