"""`minicnn visualize` and `minicnn plot`: feature maps, filters and training curves as PNG files.

Both need matplotlib (`pip install "minicnn-framework[plot]"`, or `pip install -e ".[plot]"` in a source
checkout); without it they say so in one line.
"""

from __future__ import annotations

import typer

from minicnn.cli.app import app, fail
from minicnn.tools.pictures import plot_training, require_matplotlib, visualize_checkpoint
from minicnn.train.run_folder import BEST_NAME, METRICS_NAME


@app.command()
def visualize(
    checkpoint: str = typer.Argument(..., help=f"A checkpoint file (runs/.../{BEST_NAME}) or its run folder."),
    image: str = typer.Argument(..., help="A PNG or JPEG file, resized to the model's input as `predict` does."),
    out: str = typer.Option("pictures", "--out", help="Folder for the PNG files."),
) -> None:
    """Draw the first convolution's filters and every convolution's feature maps for one image."""
    with fail.on_error():
        require_matplotlib("minicnn visualize")
        paths = visualize_checkpoint(checkpoint, image, out)
    for path in paths:
        typer.echo(path)


@app.command()
def plot(
    run_dir: str = typer.Argument(..., help=f"A run folder (the --out of `minicnn train`), holding {METRICS_NAME}."),
    out: str = typer.Option(None, "--out", help="A .png file, or a folder for curves.png (default: the run folder)."),
) -> None:
    """Draw a run's loss and accuracy per epoch, train and test, as one PNG."""
    with fail.on_error():
        require_matplotlib("minicnn plot")
        path = plot_training(run_dir, out)
    typer.echo(path)
