"""What `minicnn train` and `evaluate` draw while they work: a bar per epoch, a line per finished
epoch, a bar per download.

Each takes the console it draws on: stdout normally, stderr under `--json`, so that stdout holds
nothing but the JSON object a script reads.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from minicnn.train import Callbacks


class ProgressBars(Callbacks):
    """One bar per epoch with loss, accuracy, images/s and time left; one line per finished epoch.

    `started` says whether an epoch began (so the run folder holds a run to resume); `finished` is the
    number of the last epoch that ended, and was saved, while drawing (None before one did).
    """

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[accuracy]:.2%}  {task.fields[speed]:,.0f} img/s"),
            TimeRemainingColumn(), console=console, transient=True,
        )
        self.task = None
        self.started = False
        self.finished = None

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
        self.finished = metrics["epoch"]
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

    def __init__(self, console: Console):
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
