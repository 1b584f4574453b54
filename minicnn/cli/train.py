"""`minicnn train`, `evaluate` and `predict`: the main job, with progress bars and a short summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from minicnn.cli.app import app, console, errors, fail, warn_about_plugin_problems
from minicnn.train import Callbacks, TrainConfig, evaluate_checkpoint, predict as predict_images, resume, train as run_training


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
    console.print(f"run saved in {result.out_dir}  (checkpoints last.npz, best.npz; metrics.jsonl)")


@app.command()
def train(
    model: str = typer.Argument("lenet5", help="A registered model (see `minicnn models`) or a .toml model spec."),
    dataset: str = typer.Option(None, help="mnist, fashion-mnist, cifar10, digits... (default: mnist, or digits offline)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder holding the dataset files."),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    lr: float = typer.Option(None, help="Learning rate (default 0.03 for sgd, 0.001 for adam)."),
    optimizer: str = typer.Option("sgd", help="sgd (momentum 0.9, Nesterov) or adam."),
    schedule: str = typer.Option("cosine", help="cosine, step or none."),
    weight_decay: float = typer.Option(5e-4, "--weight-decay"),
    augment: bool = typer.Option(False, help="Random crops (and flips for colour images)."),
    device: str = typer.Option("cpu", help="cpu or cuda (cuda:N)."),
    seed: int = typer.Option(None, help="Make the run reproducible (same machine, same weights)."),
    out: str = typer.Option(None, help="Run folder (default runs/MODEL-DATASET-TIME)."),
    resume_from: str = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the earlier run in --out (its files only)."),
    limit_train: int = typer.Option(None, "--limit-train", help="Train on the first N images only."),
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
    checkpoint: str = typer.Argument(..., help="A checkpoint file, e.g. runs/.../best.npz."),
    dataset: str = typer.Option(None, help="Evaluate on another dataset's test split."),
    data_dir: str = typer.Option(None, "--data-dir"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Test loss and accuracy of a saved model."""
    with fail.on_error():
        result = evaluate_checkpoint(checkpoint_file(checkpoint), dataset, data_dir, progress=DownloadBar())
    if as_json:
        typer.echo(json.dumps(result))
    else:
        console.print(f"{result['dataset']} test set, {result['images']:,} images: accuracy {result['test_accuracy']:.2%}, loss {result['test_loss']:.4f}")


@app.command()
def predict(
    checkpoint: str = typer.Argument(..., help="A checkpoint file, e.g. runs/.../best.npz."),
    images: list[str] = typer.Argument(..., help="PNG or JPEG files."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The most likely class of each image, with its probability."""
    with fail.on_error():
        rows = predict_images(checkpoint_file(checkpoint), images)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        console.print(f"{row['image']}: {row['class']} ({row['probability']:.1%})")


def checkpoint_file(path: str) -> Path:
    """A run folder stands for its best checkpoint."""
    path = Path(path)
    return path / "best.npz" if path.is_dir() and (path / "best.npz").exists() else path
