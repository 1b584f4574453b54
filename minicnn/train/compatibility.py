"""Does a model fit a dataset? Asked once, before the first epoch, rather than learned from a crash.

One forward pass of a single zero image of the dataset's size (through `minicnn.tools.summary`, in eval
mode and without gradients, so no statistic or weight moves) finds both mistakes that would
otherwise surface late: images the model cannot take (20x20 images for LeNet-5 fail at its first
Linear layer, after the convolutions have run) and an output count that is not the dataset's class
count (a 37-output spec trains on 10-class MNIST without complaint, and `predict` fails much later).
"""

from __future__ import annotations

from minicnn.tools.summary import SummaryError, summarize


class ModelDataMismatch(ValueError):
    """The model cannot take the dataset's images, or its outputs are not one per class."""


def check_model_fits(model, model_name: str, input_size: tuple, num_classes: int, dataset_name: str) -> None:
    """Raise ModelDataMismatch naming the layer, the shapes and the fix, unless `model` maps one
    (C, H, W) = `input_size` image to `num_classes` scores.

    model: on the device it will train on; its train/eval mode is left as it was.
    """
    size = "x".join(map(str, input_size))
    try:
        summary = summarize(model, input_size, fix="use a dataset whose images fit the model, or a model built for them")
    except SummaryError as error:
        raise ModelDataMismatch(f"model '{model_name}' cannot train on '{dataset_name}' ({size} images): {error}") from None
    if summary.output_shape != (num_classes,):
        last = f" (its last layer, '{summary.rows[-1].name}' ({summary.rows[-1].type}))" if summary.rows else ""
        outputs = "x".join(map(str, summary.output_shape)) or "a scalar"
        raise ModelDataMismatch(
            f"model '{model_name}' gives {outputs} outputs per image{last} but dataset '{dataset_name}' has "
            f"{num_classes} classes: make the last layer give {num_classes} outputs (out_features = {num_classes} "
            "in a spec), or train on a dataset with that many classes"
        )
