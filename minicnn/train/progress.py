"""`TextProgress`: the progress of `mc.fit` as plain text on stderr.

The training layer may not draw with rich (only the CLI does: docs/architecture.md), so this is the
same information as `minicnn train`'s bars in plain lines: on a terminal, one line that is rewritten
in place (at most ten times a second) with the batch, loss, accuracy and speed; everywhere (a
terminal, a notebook, a log file), one line per finished epoch.
"""

from __future__ import annotations

import sys
import time

from minicnn.train.trainer import Callbacks

REDRAW_SECONDS = 0.1


class TextProgress(Callbacks):
    """Progress lines on `stream` (default: sys.stderr when the first epoch starts)."""

    def __init__(self, stream=None):
        self.stream = stream
        self.live = False
        self.drawn_at = 0.0
        self.batches = 0
        self.epochs = 0

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        if self.stream is None:
            self.stream = sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.batches, self.epochs = batches, epochs

    def on_batch(self, epoch: int, batch: int, loss: float, accuracy: float, images_per_second: float) -> None:
        now = time.monotonic()
        if not self.live or (now - self.drawn_at < REDRAW_SECONDS and batch < self.batches):
            return
        self.drawn_at = now
        self._write(f"\repoch {epoch}/{self.epochs}  {batch}/{self.batches}  loss {loss:.4f} acc {accuracy:.2%}  "
                    f"{images_per_second:,.0f} img/s\x1b[K")

    def on_evaluate_start(self, epoch: int, batches: int) -> None:
        if self.live:
            self._write(f"\repoch {epoch}/{self.epochs}  testing...\x1b[K")

    def on_epoch_end(self, metrics: dict) -> None:
        test = (f" | test loss {metrics['test_loss']:.4f} acc {metrics['test_accuracy']:.2%}"
                if "test_accuracy" in metrics else "")
        line = (f"epoch {metrics['epoch']:>2}/{self.epochs}  loss {metrics['train_loss']:.4f} "
                f"acc {metrics['train_accuracy']:.2%}{test} | {metrics['seconds']:.1f}s "
                f"{metrics['images_per_second']:,.0f} img/s")
        self._write(("\r\x1b[K" if self.live else "") + line + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
