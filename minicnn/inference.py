"""Using a trained model: its test accuracy (`evaluate_checkpoint`), the classes of image files
(`predict`), and image files as its inputs (`model_inputs`).

Each function takes a checkpoint file or a run folder, which stands for its best checkpoint, and
gets the model through `minicnn.train.models.resolve_model`; the checkpoint's metadata says how its
inputs were prepared (input_size, normalize), what its outputs mean (classes) and where its data
came from (its run's settings, under "config").

Pictures people draw are usually dark on white, while MNIST and its kin are light on dark: read as
they are, a drawn "3" is a "4" to LeNet-5. So `predict` inverts a picture (255 - pixel) when the
model was trained on light-on-dark images (`trained_light_on_dark`) and the picture has a light
background (`light_background`); `invert=True`/`False` decides instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minicnn import data
from minicnn.autograd import Tensor, no_grad
from minicnn.data.dataset import pixels_to_float
from minicnn.functional import softmax
from minicnn.nn import Module
from minicnn.train.models import resolve_model
from minicnn.train.run import EVAL_BATCH_SIZE, load_split
from minicnn.train.trainer import evaluate

MIDDLE = 127.5  # the middle of the 0..255 pixel range: a background above it is light


def model_from_checkpoint(path) -> tuple[Module, dict]:
    """(model in eval mode, checkpoint metadata) of a checkpoint file or run folder: `resolve_model`
    taking `path` as a checkpoint. Weights holding a NaN or an infinity are refused."""
    return resolve_model(path, accept=("checkpoint",))


def evaluate_checkpoint(path, dataset: str | None = None, data_dir: str | None = None, progress=None) -> dict:
    """Test loss and accuracy of a checkpoint on its dataset's test split (or another dataset's).

    The data is looked for where the run found it: in the data folder its settings recorded (the
    training's --data-dir), unless `data_dir` is given or `dataset` names another dataset. When that
    folder no longer holds the data and it is nowhere else, the DataUnavailableError says so in a few
    lines: that folder, and how to point elsewhere.
    """
    model, meta = model_from_checkpoint(path)
    name = dataset or meta["dataset"]
    if name is None:  # a model trained from arrays in Python (mc.fit) records no dataset
        raise ValueError(f"checkpoint {path} was trained on arrays passed to mc.fit, not on a registered dataset: "
                         "name one to evaluate on (dataset=NAME, --dataset NAME), or use mc.evaluate(model, data) in Python")
    recorded = (meta.get("config") or {}).get("data_dir") if name == meta["dataset"] else None
    try:
        test_set = load_split(name, "test", data_dir or recorded, progress)
    except data.DataUnavailableError:
        if data_dir or not recorded:
            raise
        raise _recorded_data_missing(name, recorded, path) from None
    if tuple(test_set.input_size) != tuple(meta["input_size"]):
        raise ValueError(f"dataset '{name}' has images of {test_set.input_size} but the model was trained on {tuple(meta['input_size'])}")
    test_set.transform = data.transforms.Normalize(meta["normalize"]["mean"], meta["normalize"]["std"])
    loss, accuracy = evaluate(model, data.DataLoader(test_set, EVAL_BATCH_SIZE))
    return {"dataset": name, "images": len(test_set), "test_loss": loss, "test_accuracy": accuracy}


def _recorded_data_missing(dataset: str, folder: str, run) -> data.DataUnavailableError:
    """The error for a run whose recorded data folder no longer holds its dataset, which is nowhere else
    either: the folder, and how to point elsewhere (rather than every place tried and every mirror)."""
    state = "holds no copy of it" if Path(folder).expanduser().is_dir() else "no longer exists"
    return data.DataUnavailableError(
        dataset, [f"{folder}, the data folder the run {run} recorded: {state}",
                  "every other place minicnn looks for it: not there either"],
        f"Fix: pass data_dir=DIR (--data-dir DIR) where DIR holds the '{dataset}' files, or dataset=NAME "
        "(--dataset NAME) to evaluate on another dataset.")


def read_pictures(images: list, meta: dict) -> np.ndarray:
    """Image files (PNG or JPEG) as pixels (N, C, H, W) uint8, converted to the model's channels and
    resized to its input (meta: the checkpoint's metadata, its input_size)."""
    from minicnn.data.image_folder import read_image

    channels, height, width = meta["input_size"]
    return np.stack([read_image(image, (height, width), channels) for image in images])


def model_batch(pixels: np.ndarray, meta: dict) -> np.ndarray:
    """Pixels (N, C, H, W) uint8 as the model's batch: float32 in [0, 1], normalised as in training."""
    return data.transforms.Normalize(meta["normalize"]["mean"], meta["normalize"]["std"])(pixels_to_float(pixels))


def model_inputs(images: list, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """Image files (PNG or JPEG) as a checkpoint's model sees them, as they are (never inverted).

    meta: the checkpoint's metadata (input_size, normalize). Returns the pixels (N, C, H, W) uint8,
    resized to the model's input, and the batch (N, C, H, W) float32, scaled to [0, 1] and
    normalised as in training.
    """
    pixels = read_pictures(images, meta)
    return pixels, model_batch(pixels, meta)


def light_background(pixels: np.ndarray) -> np.ndarray:
    """(N,) bool: which pictures (N, C, H, W) uint8 have a light background.

    The background is taken from the border, the outermost row and column on each side (every
    channel), where a drawing rarely reaches: light when their mean is above MIDDLE (127.5). A digit
    drawn dark on white has a border near 255, an MNIST digit one of 0.
    """
    pixels = np.asarray(pixels)
    border = np.concatenate([pixels[:, :, 0, :], pixels[:, :, -1, :], pixels[:, :, 1:-1, 0], pixels[:, :, 1:-1, -1]],
                            axis=-1)
    return border.reshape(len(pixels), -1).mean(axis=1, dtype=np.float64) > MIDDLE


def trained_light_on_dark(meta: dict) -> bool:
    """Whether a checkpoint's model was trained on light drawings on a dark background: grey images
    (one channel) whose mean brightness is below the middle of the range, as MNIST's (0.13),
    Fashion-MNIST's (0.29) and the bundled digits'. Colour models are never inverted on their own: a
    photograph's light sky is no reason to."""
    return meta["input_size"][0] == 1 and meta["normalize"]["mean"][0] < 0.5


def predict(path, images: list, invert: bool | None = None) -> list[dict]:
    """Class and probability for each image file (PNG or JPEG), resized to the model's input.

    invert: None inverts the pictures with a light background when the model was trained on light
    drawings on dark (see the module's docstring); True inverts every picture, False none. Each row
    says whether its picture was inverted.
    """
    model, meta = model_from_checkpoint(path)
    pixels = read_pictures(images, meta)
    if invert is None:
        inverted = light_background(pixels) & trained_light_on_dark(meta)
    else:
        inverted = np.full(len(pixels), bool(invert))
    pixels[inverted] = 255 - pixels[inverted]
    with no_grad():
        probabilities = softmax(model(Tensor(model_batch(pixels, meta))), 1).numpy()
    best = probabilities.argmax(axis=1)
    return [
        {"image": str(image), "class": meta["classes"][k], "index": int(k), "probability": float(probabilities[i, k]),
         "inverted": bool(inverted[i])}
        for i, (image, k) in enumerate(zip(images, best))
    ]
