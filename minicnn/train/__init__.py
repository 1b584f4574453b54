"""Training: the loop (`Trainer`), runs from a configuration (`train`, `resume`), the run folder
(`RunFolder`), checkpoints, and the one resolver of model references (`resolve_model`).

`mc.fit` and `mc.evaluate`, the same loop over a model object and data objects, live in the module
`minicnn.train.fit` (not re-exported here, where `evaluate` is the loop's own, over a DataLoader).

Using a trained model lives in `minicnn.inference`; its `evaluate_checkpoint`, `predict` and
`model_from_checkpoint` are still importable from here, loaded on first use (minicnn.inference
imports this package, so importing them here eagerly would be circular).
"""

import importlib

from minicnn.train.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from minicnn.train.config import TrainConfig
from minicnn.train.files import WriteError
from minicnn.train.models import resolve_model
from minicnn.train.run import RunResult, resume, train
from minicnn.train.run_folder import RunFolder, RunFolderError, RunFolderInUse
from minicnn.train.trainer import Callbacks, NonFiniteLossError, NonFiniteWeightsError, Trainer, evaluate

_INFERENCE = ("evaluate_checkpoint", "model_from_checkpoint", "predict")


def __getattr__(name: str):
    if name not in _INFERENCE:
        raise AttributeError(f"module 'minicnn.train' has no attribute '{name}'")
    return getattr(importlib.import_module("minicnn.inference"), name)


__all__ = [
    "Callbacks", "Checkpoint", "CheckpointError", "NonFiniteLossError", "NonFiniteWeightsError", "RunFolder",
    "RunFolderError", "RunFolderInUse", "RunResult", "TrainConfig", "Trainer", "WriteError", "evaluate",
    "evaluate_checkpoint", "load_checkpoint", "model_from_checkpoint", "predict", "resolve_model", "resume",
    "save_checkpoint", "train",
]
