"""The run folder: one writer at a time, no file of anyone else's touched, nothing stale left over.

A run holds an exclusive `flock` on `.minicnn.lock` in its folder (the file holds its PID) for its
whole life, from before it writes anything until it ends; the operating system drops the lock when
the process dies, so a run killed with kill -9 never blocks the next one, and a second run or
resume into the folder is refused at once, naming the holder's PID. (Two runs into one folder used
to finish with `best` from one and `last` from the other and checkpoints torn by concurrent writes.)
The lock file is removed while still locked when the run ends; a process that locked the file just
as it was removed finds it gone and locks the new one.

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
import zipfile
from pathlib import Path

from minicnn.train.files import is_temporary

LOCK_NAME = ".minicnn.lock"
RUN_FILES = ("config.json", "metrics.jsonl", "last.npz", "last.json", "best.npz", "best.json")
CONFIG_KEYS = {"model", "epochs", "seed", "optimizer"}  # in the config.json of every minicnn run


class RunFolderError(FileExistsError):
    """The folder cannot take this run: it holds a previous run, or files that are not a run's."""


class RunFolderInUse(RunFolderError):
    """Another process is running in the folder (it holds the folder's lock)."""


def check_new(folder: Path, overwrite: bool = False) -> None:
    """Raise RunFolderError now if a new run could not go into `folder`, before any data is read.

    Read-only: `claim_new` checks again, under the lock, when the run starts.
    """
    if not folder.exists():
        return
    if folder.is_dir():
        _refuse_if_locked(folder)
    _refuse_unless_free(folder, overwrite)


@contextlib.contextmanager
def claim_new(folder: Path, overwrite: bool = False):
    """Make and lock `folder` for a new run, held until the with block ends; with `overwrite`, an
    earlier run's files are removed. Raises RunFolderError (see the module's docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        _refuse_unless_free(folder, overwrite)
        if overwrite:
            for name in RUN_FILES:
                (folder / name).unlink(missing_ok=True)
        _remove_temporaries(folder)
        yield


@contextlib.contextmanager
def claim_existing(folder: Path):
    """Lock the folder of a run being resumed, held until the with block ends, and remove the
    temporary files a killed writer left there."""
    with _locked(folder):
        _remove_temporaries(folder)
        yield


def is_run(folder: Path) -> bool:
    """Whether `folder` holds a minicnn run: a config.json of a run's settings, or one beside a
    minicnn checkpoint (when config.json itself was damaged)."""
    config = folder / "config.json"
    if not config.is_file():
        return False
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
        if isinstance(values, dict) and CONFIG_KEYS <= set(values):
            return True
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    try:
        with zipfile.ZipFile(folder / "last.npz") as archive:
            return "__meta__.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _refuse_unless_free(folder: Path, overwrite: bool) -> None:
    if not folder.is_dir():
        raise RunFolderError(f"{folder} is a file, not a folder: choose another --out")
    names = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME and not _is_temporary(p.name))
    if not names:
        return
    if not is_run(folder):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise RunFolderError(f"{folder} is not empty and holds no minicnn run ({shown}): choose another --out. "
                             "minicnn never replaces files it did not write, not even with --overwrite")
    if overwrite:
        return
    if (folder / "last.npz").exists():
        raise RunFolderError(f"{folder} already holds a run: resume it with --resume {folder}, choose another "
                             "--out, or pass --overwrite to replace it")
    raise RunFolderError(f"{folder} holds a run that stopped before saving its first checkpoint: resume it with "
                         f"--resume {folder} (it starts again from epoch 1), or pass --overwrite to replace it")


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
