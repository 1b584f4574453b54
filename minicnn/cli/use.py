"""`minicnn evaluate` and `minicnn predict`: using a trained model, given as its run folder (which
stands for its best checkpoint) or a checkpoint file.

Paths are printed unwrapped (`soft_wrap`), so a long run or image path stays whole on its line
however narrow the terminal or pipe.
"""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from minicnn.cli.app import app, console, errors, fail
from minicnn.cli.progress import DownloadBar
from minicnn.inference import evaluate_checkpoint, predict as predict_images

TRAINED = "A run folder (it stands for its best checkpoint) or a checkpoint file."


@app.command()
def evaluate(
    checkpoint: str = typer.Argument(..., help=TRAINED),
    dataset: str = typer.Option(None, help="Evaluate on another dataset's test split (default: the run's)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder holding the dataset (default: the run's --data-dir)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Test loss and accuracy of a trained model, on the data it was trained with."""
    with fail.on_error():
        result = evaluate_checkpoint(checkpoint, dataset, data_dir, progress=DownloadBar(errors if as_json else console))
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(f"{result['dataset']} test set, {result['images']:,} images: accuracy {result['test_accuracy']:.2%}, "
                      f"loss {result['test_loss']:.4f}", highlight=False)


@app.command()
def predict(
    checkpoint: str = typer.Argument(..., help=TRAINED),
    images: list[str] = typer.Argument(..., help="PNG or JPEG files."),
    invert: bool | None = typer.Option(
        None, "--invert/--no-invert", show_default=False,
        help="Invert the pictures, or not. Default: a picture with a light background (a dark digit drawn on white) "
             "is inverted when the model was trained on light drawings on dark, as on MNIST.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per image."),
) -> None:
    """The most likely class of each image, with its probability."""
    with fail.on_error():
        rows = predict_images(checkpoint, images, invert=invert)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    why = "light background" if invert is None else "--invert"
    for row in rows:
        note = f"  (inverted: {why})" if row["inverted"] else ""
        console.print(f"{escape(row['image'])}: {escape(row['class'])} ({row['probability']:.1%}){note}",
                      highlight=False, soft_wrap=True)
