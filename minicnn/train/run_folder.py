"""The run folder: one type, `RunFolder`, owns its format and who may write it.

What a run folder holds (docs/training.md, "The run folder"):

    config.json              every setting of the run (a TrainConfig), written when it starts
    metrics.jsonl            one JSON line per finished epoch
    last.safetensors/.json   the checkpoint of the latest epoch (and its sidecar), the one a resume continues
    best.safetensors/.json   the checkpoint of the epoch with the best test accuracy; a run folder given
                             where a checkpoint is expected (evaluate, predict, visualize, summary) stands for it

A run of an earlier minicnn holds `last.npz` and `best.npz` instead (minicnn.train.checkpoint reads
both formats). Where no .safetensors checkpoint exists yet, `last` and `best` are those files, so such
a run evaluates and resumes; from then on it writes .safetensors, which take precedence: a stale .npz
left beside them is never read again, and --overwrite removes it with the rest of the run.

Each epoch appends its metrics line, then writes `best` (when the test accuracy improved) and last
of all `last`, which commits the epoch: a run killed at any instant resumes to the same `best` and
`last` as a run never stopped, and a resume drops the metrics lines of epochs its `last` does not
cover. Every file but metrics.jsonl is written atomically (minicnn.train.files).

One writer at a time: a run holds an exclusive `flock` on `.minicnn.lock` in its folder (the file
holds its PID) for its whole life, from before it writes anything until it ends; the operating system
drops the lock when the process dies, so a run killed with kill -9 never blocks the next one, and a
second run or resume into the folder is refused at once, naming the holder's PID. (Two runs into one
folder used to finish with `best` from one and `last` from the other and checkpoints torn by
concurrent writes.) The lock file is removed while still locked when the run ends; a process that
locked the file just as it was removed finds it gone and locks the new one.

A new run goes into a folder that does not exist, is empty, or, with `overwrite`, holds an earlier
minicnn run, of which only the run's own files (RUN_FILES) are removed. A folder holding anything
else is refused even with `overwrite`: minicnn never deletes or replaces a file it did not write.
Temporary files of a killed writer (minicnn.train.files) are removed whenever a run takes the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict
from pathlib import Path

from minicnn.train.checkpoint import Checkpoint, is_checkpoint, load_checkpoint, save_checkpoint
from minicnn.train.config import TrainConfig
from minicnn.train.files import append_line, is_temporary, write_atomically

CONFIG_NAME, METRICS_NAME, LAST_NAME, BEST_NAME = "config.json", "metrics.jsonl", "last.safetensors", "best.safetensors"
OLD_LAST_NAME, OLD_BEST_NAME = "last.npz", "best.npz"  # an earlier minicnn's checkpoints
LOCK_NAME = ".minicnn.lock"
RUN_FILES = (CONFIG_NAME, METRICS_NAME, LAST_NAME, "last.json", BEST_NAME, "best.json",  # checkpoints with their sidecars
             OLD_LAST_NAME, OLD_BEST_NAME)
CONFIG_KEYS = {"model", "epochs", "seed", "optimizer"}  # in the config.json of every minicnn run
NOT_A_RUN = "give the --out folder of a run"


class RunFolderError(FileExistsError):
    """The folder cannot take this run: it holds a previous run, or files that are not a run's."""


class RunFolderInUse(RunFolderError):
    """Another process is running in the folder (it holds the folder's lock)."""


class RunFolder:
    """The folder of one training run: its files, reading and writing them, and its lock.

    path: the folder (it need not exist yet). Nothing is read or written when it is made.
    """

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder('{self.path}')"

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_NAME

    @property
    def last(self) -> Path:
        """The checkpoint of the latest finished epoch: last.safetensors, or an earlier minicnn's
        last.npz where only that exists."""
        return self._checkpoint(LAST_NAME, OLD_LAST_NAME)

    @property
    def best(self) -> Path:
        """The checkpoint of the epoch with the best test accuracy so far: best.safetensors, or an
        earlier minicnn's best.npz where only that exists."""
        return self._checkpoint(BEST_NAME, OLD_BEST_NAME)

    def _checkpoint(self, name: str, old_name: str) -> Path:
        current, old = self.path / name, self.path / old_name
        return old if old.exists() and not current.exists() else current

    @staticmethod
    def checkpoint_for(path) -> Path:
        """The checkpoint file `path` stands for: a run folder holding a best checkpoint stands for it;
        any other path for itself (so loading a folder without one says to give a file)."""
        path = Path(path)
        return RunFolder(path).best if path.is_dir() and RunFolder(path).best.exists() else path

    # -- who may write ------------------------------------------------------------------------------

    def is_run(self) -> bool:
        """Whether the folder holds a minicnn run: a config.json of a run's settings, or one beside a
        minicnn checkpoint (when config.json itself was damaged)."""
        if not self.config_file.is_file():
            return False
        try:
            values = json.loads(self.config_file.read_text(encoding="utf-8"))
            if isinstance(values, dict) and CONFIG_KEYS <= set(values):
                return True
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
        return is_checkpoint(self.last)

    def check_new(self, overwrite: bool = False) -> None:
        """Raise RunFolderError now if a new run could not go into the folder, before any data is read.

        Read-only: `claim_new` checks again, under the lock, when the run starts.
        """
        if not self.path.exists():
            return
        if self.path.is_dir():
            _refuse_if_locked(self.path)
        self._refuse_unless_free(overwrite)

    @contextlib.contextmanager
    def claim_new(self, overwrite: bool = False):
        """Make and lock the folder for a new run, held until the with block ends; with `overwrite`, an
        earlier run's files are removed. Raises RunFolderError (see the module's docstring)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with _locked(self.path):
            self._refuse_unless_free(overwrite)
            if overwrite:
                for name in RUN_FILES:
                    (self.path / name).unlink(missing_ok=True)
            _remove_temporaries(self.path)
            yield

    @contextlib.contextmanager
    def claim_existing(self):
        """Lock the folder of a run being resumed, held until the with block ends, and remove the
        temporary files a killed writer left there."""
        with _locked(self.path):
            _remove_temporaries(self.path)
            yield

    def _refuse_unless_free(self, overwrite: bool) -> None:
        folder = self.path
        if not folder.is_dir():
            raise RunFolderError(f"{folder} is a file, not a folder: choose another --out")
        names = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME and not _is_temporary(p.name))
        if not names:
            return
        if not self.is_run():
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise RunFolderError(f"{folder} is not empty and holds no minicnn run ({shown}): choose another --out. "
                                 "minicnn never replaces files it did not write, not even with --overwrite")
        if overwrite:
            return
        if self.last.exists():
            raise RunFolderError(f"{folder} already holds a run: resume it with --resume {folder}, choose another "
                                 "--out, or pass --overwrite to replace it")
        raise RunFolderError(f"{folder} holds a run that stopped before saving its first checkpoint: resume it with "
                             f"--resume {folder} (it starts again from epoch 1), or pass --overwrite to replace it")

    # -- settings -----------------------------------------------------------------------------------

    def start(self, config: TrainConfig) -> None:
        """Write the run's settings and an empty metrics log (call it under `claim_new`)."""
        settings = (json.dumps(asdict(config), indent=2) + "\n").encode("utf-8")
        write_atomically({self.config_file: lambda file: file.write(settings),
                          self.metrics_file: lambda file: None})

    def read_settings(self) -> dict:
        """config.json as a dict; a FileNotFoundError when the folder is not a minicnn run's, a
        ValueError naming the file when it was cut short or edited."""
        path = self.config_file
        if not path.is_file():
            raise FileNotFoundError(f"{self.path} is not a minicnn run folder (no {CONFIG_NAME}): {NOT_A_RUN}")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(values, dict):
                raise ValueError(f"it holds a JSON {type(values).__name__}, not an object")
        except (UnicodeDecodeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
            raise self._unreadable(error) from None
        missing = sorted(CONFIG_KEYS - set(values))
        if missing:  # someone else's config.json: never train into their folder
            raise FileNotFoundError(f"{self.path} is not a minicnn run folder ({CONFIG_NAME} has no "
                                    f"{', '.join(missing)}): {NOT_A_RUN}")
        return values

    def read_config(self) -> TrainConfig:
        """The settings the run saved, checked as when they were given (see `read_settings`)."""
        values = self.read_settings()
        try:
            return TrainConfig.from_dict(values)
        except (ValueError, TypeError) as error:
            raise self._unreadable(error) from None

    def _unreadable(self, error: Exception) -> ValueError:
        return ValueError(f"{self.config_file} cannot be read as the run's settings ({error}): it was cut short or "
                          "edited. Put the settings back (last.json keeps a copy under \"config\"), or start the run "
                          "again with --overwrite")

    # -- metrics and checkpoints --------------------------------------------------------------------

    def read_metrics(self) -> list[dict]:
        """The finished epochs of metrics.jsonl, one dict each in epoch order (a line torn by a crash
        is skipped; an epoch logged twice keeps its last line); [] before the first epoch ends."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"run folder {self.path} not found: give the --out folder of a `minicnn train` run")
        if not self.metrics_file.is_file():
            raise FileNotFoundError(f"{self.path} has no {METRICS_NAME}: give the --out folder of a `minicnn train` run")
        epochs = {epoch: row for _, row, epoch in self._logged()}
        return [epochs[epoch] for epoch in sorted(epochs)]

    def _logged(self):
        """(line, row, epoch) of each whole line of metrics.jsonl, in file order."""
        if not self.metrics_file.exists():
            return
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                yield line, row, int(row["epoch"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):  # a line torn by a crash mid-write
                continue

    def record_epoch(self, metrics: dict, model_state: dict, optimizer_state: dict | None, state: dict,
                     improved: bool) -> None:
        """Log a finished epoch and write its checkpoints in the order of the module's docstring: the
        metrics line, `best` when `improved`, then `last`, the commit point. state: the checkpoint's
        metadata."""
        append_line(self.metrics_file, json.dumps(metrics))
        if improved:
            save_checkpoint(self.path / BEST_NAME, model_state, optimizer_state, state)
        save_checkpoint(self.path / LAST_NAME, model_state, optimizer_state, state)

    def last_checkpoint(self) -> Checkpoint | None:
        """The checkpoint a resume continues from; None when the run stopped before its first epoch ended."""
        return load_checkpoint(self.last) if self.last.exists() else None

    def truncate_metrics(self, checkpoint: Checkpoint | None) -> None:
        """Keep the metrics of the epochs `checkpoint` (the run's last) covers, none without one (a run
        killed after writing a line but before its checkpoint would otherwise log that epoch twice)."""
        kept = []
        if checkpoint is not None:
            meta = checkpoint.meta
            kept = [line for line, _, epoch in self._logged() if epoch < meta["epoch"]]
            kept.append(json.dumps(meta["metrics"]))
        text = "".join(line + "\n" for line in kept).encode("utf-8")
        write_atomically({self.metrics_file: lambda file: file.write(text)})


def _is_temporary(name: str) -> bool:
    return any(is_temporary(name, of) for of in RUN_FILES)


def _remove_temporaries(folder: Path) -> None:
    """Remove what writers killed mid-write left (called under the lock, so none of them is live)."""
    for path in folder.iterdir():
        if _is_temporary(path.name):
            path.unlink(missing_ok=True)


def _in_use(folder: Path, descriptor: int) -> RunFolderInUse:
    """The refusal for a folder whose lock file is open as `descriptor`, naming the PID it holds."""
    text = os.pread(descriptor, 32, 0).decode("ascii", errors="replace").strip()
    holder = f"PID {text}" if text.isdigit() else "another process"
    return RunFolderInUse(f"{folder} is in use by another minicnn run ({holder} holds {folder / LOCK_NAME}): "
                          "wait for that run to end or stop it; two runs writing one folder would mix their "
                          "checkpoints")


def _refuse_if_locked(folder: Path) -> None:
    """Raise RunFolderInUse if a live process holds the folder's lock (which is tried for an instant)."""
    try:
        descriptor = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(folder, descriptor) from None
    finally:
        os.close(descriptor)


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def _locked(folder: Path):
    path = folder / LOCK_NAME
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _in_use(folder, descriptor)
            os.close(descriptor)
            raise error from None
        if _same_file(descriptor, path):
            break
        os.close(descriptor)  # its holder removed it as it let go: lock the file now in its place
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(descriptor)
