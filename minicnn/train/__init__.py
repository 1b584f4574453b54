"""Training: the loop (`Trainer`), runs from a configuration (`train`, `resume`), checkpoints, and
using a trained model (`evaluate_checkpoint`, `predict`)."""

from minicnn.train.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from minicnn.train.files import WriteError
from minicnn.train.run import RunResult, TrainConfig, evaluate_checkpoint, model_from_checkpoint, predict, resume, train
from minicnn.train.run_folder import RunFolderError, RunFolderInUse
from minicnn.train.trainer import Callbacks, NonFiniteLossError, NonFiniteWeightsError, Trainer, evaluate

__all__ = [
    "Callbacks", "Checkpoint", "CheckpointError", "NonFiniteLossError", "NonFiniteWeightsError", "RunFolderError",
    "RunFolderInUse", "RunResult", "TrainConfig", "Trainer", "WriteError", "evaluate", "evaluate_checkpoint",
    "load_checkpoint", "model_from_checkpoint", "predict", "resume", "save_checkpoint", "train",
]
