"""`minicnn train`, `evaluate` and `predict`: the main job, with progress bars and a short summary.

The options of `train` take their defaults from TrainConfig's fields (`minicnn.train.config.default`),
so the CLI and Python runs share one set of defaults.
"""

from __future__ import annotations

import json
import time

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from minicnn.cli.app import app, console, errors, fail, warn_about_plugin_problems
from minicnn.inference import evaluate_checkpoint, predict as predict_images
from minicnn.train import Callbacks, TrainConfig, resume, train as run_training
from minicnn.train.config import default
from minicnn.train.run_folder import BEST_NAME, LAST_NAME, METRICS_NAME


class ProgressBars(Callbacks):
    """One bar per epoch with loss, accuracy, images/s and time left; one line per finished epoch."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[accuracy]:.2%}  {task.fields[speed]:,.0f} img/s"),
            TimeRemainingColumn(), console=console, transient=True,
        )
        self.task = None
        self.started = False

    def on_epoch_start(self, epoch, epochs, batches):
        if not self.started:
            self.progress.start()
            self.started = True
        self.task = self.progress.add_task("train", total=batches, epoch=f"{epoch}/{epochs}", loss=0.0, accuracy=0.0, speed=0.0)

    def on_batch(self, epoch, batch, loss, accuracy, images_per_second):
        self.progress.update(self.task, completed=batch, loss=loss, accuracy=accuracy, speed=images_per_second)

    def on_evaluate_start(self, epoch, batches):
        self.progress.update(self.task, description="testing")

    def on_epoch_end(self, metrics):
        self.progress.remove_task(self.task)
        self.progress.console.print(
            f"epoch {metrics['epoch']:>2}  loss {metrics['train_loss']:.4f} acc {metrics['train_accuracy']:.2%} | "
            f"test loss {metrics['test_loss']:.4f} acc {metrics['test_accuracy']:.2%} | "
            f"{metrics['seconds']:.0f}s {metrics['images_per_second']:,.0f} img/s", highlight=False
        )

    def stop(self):
        if self.started:
            self.progress.stop()


class DownloadBar:
    """The `progress(done_bytes, total_bytes)` callback of a download, drawn as a bar."""

    def __init__(self):
        self.progress = Progress(TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), console=console, transient=True)
        self.task = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("download", total=total)
        self.progress.update(self.task, completed=done, total=total)
        if total is not None and done >= total:
            self.progress.stop()
            self.task = None


def _notify(message: str) -> None:
    errors.print(f"[yellow]note:[/] {escape(message)}", highlight=False)


def _finish(result, started: float) -> None:
    """The summary line; its best accuracy is the whole run's, epochs before a --resume included."""
    last = result.history[-1] if result.history else None
    best = f" (best {result.best_accuracy:.2%})" if result.best_accuracy is not None else ""
    summary = f": test accuracy {last['test_accuracy']:.2%}{best}" if last else f": nothing left to train{best}"
    console.print(f"[bold]done[/] in {time.perf_counter() - started:.0f}s on {result.dataset}{summary}")
    console.print(f"run saved in {result.out_dir}  (checkpoints {LAST_NAME}, {BEST_NAME}; {METRICS_NAME})")


@app.command()
def train(
    model: str = typer.Argument(default("model"), help="A registered model (see `minicnn models`) or a .toml model spec."),
    dataset: str = typer.Option(default("dataset"), help="mnist, fashion-mnist, cifar10, digits... (default: mnist, or digits offline)."),
    data_dir: str = typer.Option(default("data_dir"), "--data-dir", help="Folder holding the dataset files."),
    epochs: int = typer.Option(default("epochs"), min=1),
    batch_size: int = typer.Option(default("batch_size"), "--batch-size", min=1),
    lr: float = typer.Option(default("lr"), help="Learning rate (default: the optimizer's own, see `minicnn optimizers`)."),
    optimizer: str = typer.Option(default("optimizer"), help="sgd (Nesterov momentum), adam, or a plugin's: `minicnn optimizers`."),
    schedule: str = typer.Option(default("schedule"), help="cosine, step, none, or a plugin's: `minicnn schedules`."),
    weight_decay: float = typer.Option(default("weight_decay"), "--weight-decay"),
    augment: bool = typer.Option(default("augment"), help="Random crops (and flips for colour images)."),
    device: str = typer.Option(default("device"), help="cpu or cuda (cuda:N)."),
    seed: int = typer.Option(default("seed"), help="Make the run reproducible (same machine, same weights)."),
    out: str = typer.Option(default("out"), help="Run folder (default runs/MODEL-DATASET-TIME)."),
    resume_from: str = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the earlier run in --out (its files only)."),
    limit_train: int = typer.Option(default("limit_train"), "--limit-train", help="Train on the first N images only."),
) -> None:
    """Train a model, evaluating on the test set and saving checkpoints after every epoch."""
    started = time.perf_counter()
    bars = ProgressBars()
    with fail.on_error():
        try:
            if resume_from and overwrite:
                raise ValueError("--resume continues a run and --overwrite replaces one: pass one of them")
            if resume_from:
                result = resume(resume_from, callbacks=bars, progress=DownloadBar(), notify=_notify)
            else:
                config = TrainConfig(
                    model=model, dataset=dataset, data_dir=data_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                    lr=lr, schedule=schedule, weight_decay=weight_decay, augment=augment, device=device, seed=seed,
                    out=out, limit_train=limit_train,
                )
                result = run_training(config, callbacks=bars, progress=DownloadBar(), notify=_notify, overwrite=overwrite)
        finally:
            bars.stop()
    _finish(result, started)
    warn_about_plugin_problems()


@app.command()
def evaluate(
    checkpoint: str = typer.Argument(..., help=f"A checkpoint file (runs/.../{BEST_NAME}) or its run folder."),
    dataset: str = typer.Option(None, help="Evaluate on another dataset's test split."),
    data_dir: str = typer.Option(None, "--data-dir"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Test loss and accuracy of a saved model."""
    with fail.on_error():
        result = evaluate_checkpoint(checkpoint, dataset, data_dir, progress=DownloadBar())
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(f"{result['dataset']} test set, {result['images']:,} images: accuracy {result['test_accuracy']:.2%}, loss {result['test_loss']:.4f}")


@app.command()
def predict(
    checkpoint: str = typer.Argument(..., help=f"A checkpoint file (runs/.../{BEST_NAME}) or its run folder."),
    images: list[str] = typer.Argument(..., help="PNG or JPEG files."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The most likely class of each image, with its probability."""
    with fail.on_error():
        rows = predict_images(checkpoint, images)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        console.print(f"{row['image']}: {row['class']} ({row['probability']:.1%})")

