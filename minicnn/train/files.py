"""How training writes its files: never half of one, and a failed write names the file.

`write_atomically` writes each file to a temporary file beside it, flushed to disk, and only then
renames them over the old ones, in the order given: a reader (or a run resumed after kill -9) sees
each file whole, old or new. The temporary name is unique to its writer
(`.last.npz.<pid>-<random>.tmp`), so two processes never write into one temporary file; a process
killed mid-write leaves its temporary file behind, and `is_temporary` recognises it so the run folder
can remove it at the next start or resume.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


class WriteError(OSError):
    """A file could not be written (a full disk, a folder that became read-only)."""


def _failed(path: Path, error: OSError, outcome: str) -> WriteError:
    """`error` restated with the file it was writing, what happened to that file and what to do."""
    reason = error.strerror or str(error)
    advice = "the disk is full: free some space" if error.errno == errno.ENOSPC else f"check that {path.parent} can be written"
    return WriteError(f"could not write {path} ({reason}); {advice}. {outcome}")


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


def is_temporary(name: str, of: str) -> bool:
    """Whether `name` is a temporary file `write_atomically` made for a file named `of`."""
    return name.startswith(f".{of}.") and name.endswith(TEMPORARY_SUFFIX)


def write_atomically(writes: dict) -> None:
    """Write every file of `writes` (path -> function that writes bytes to an open file), then rename
    them into place in the order given, so the last one is the commit point: after a failure or a
    kill before it is renamed, it still holds its previous content. Raises WriteError naming the
    file that failed; no temporary file is left behind unless the process is killed."""
    temporaries = {Path(path): _temporary_name(Path(path)) for path in writes}
    try:
        for (path, temporary), write in zip(temporaries.items(), writes.values()):
            try:
                with open(temporary, "xb") as file:
                    write(file)
                    file.flush()
                    os.fsync(file.fileno())
            except OSError as error:
                raise _failed(path, error, f"{path.name} is left as it was") from error
        for path, temporary in temporaries.items():
            os.replace(temporary, path)
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)


def append_line(path: Path, line: str) -> None:
    """Append `line` and a newline to the text file `path` (a line torn by a crash is for the reader
    to skip), raising WriteError naming the file."""
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    except OSError as error:
        raise _failed(path, error, "Its last line may be cut short") from error
