"""Using a trained model: its test accuracy (`evaluate_checkpoint`), the classes of image files
(`predict`), and image files as its inputs (`model_inputs`).

Each function takes a checkpoint file or a run folder, which stands for its best checkpoint, and
gets the model through `minicnn.train.models.resolve_model`; the checkpoint's metadata says how its
inputs were prepared (input_size, normalize) and what its outputs mean (classes).
"""

from __future__ import annotations

import numpy as np

from minicnn import data
from minicnn.autograd import Tensor, no_grad
from minicnn.data.dataset import pixels_to_float
from minicnn.functional import softmax
from minicnn.nn import Module
from minicnn.train.models import resolve_model
from minicnn.train.run import EVAL_BATCH_SIZE, load_split
from minicnn.train.trainer import evaluate


def model_from_checkpoint(path) -> tuple[Module, dict]:
    """(model in eval mode, checkpoint metadata) of a checkpoint file or run folder: `resolve_model`
    taking `path` as a checkpoint. Weights holding a NaN or an infinity are refused."""
    return resolve_model(path, accept=("checkpoint",))


def evaluate_checkpoint(path, dataset: str | None = None, data_dir: str | None = None, progress=None) -> dict:
    """Test loss and accuracy of a checkpoint on its dataset's test split (or another dataset's)."""
    model, meta = model_from_checkpoint(path)
    name = dataset or meta["dataset"]
    test_set = load_split(name, "test", data_dir, progress)
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
