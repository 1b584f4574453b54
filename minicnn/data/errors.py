"""The errors the data package raises: a file that is not what it should be, a dataset that cannot be
found anywhere, a download that failed. Each message names the file, source or URL and what to do."""

from __future__ import annotations


class DataError(Exception):
    """Base class of minicnn's data errors."""


class DataFormatError(DataError, ValueError):
    """A data file is corrupt, truncated, empty or of the wrong format (the message names the file)."""


class DownloadError(DataError):
    """Every URL for a file failed: unreachable, interrupted past its retries, or a checksum mismatch.

    `failures` holds one "URL: why" line per URL tried.
    """

    def __init__(self, filename: str, failures: list[str]):
        self.filename = filename
        self.failures = list(failures)
        lines = "\n".join(f"  - {failure}" for failure in self.failures)
        super().__init__(f"could not download {filename}:\n{lines}")


class DataUnavailableError(DataError):
    """A dataset was found nowhere and could not be downloaded.

    `tried` lists every place looked at, each with why it did not do; the message ends with the fix.
    """

    def __init__(self, dataset: str, tried: list[str], fix: str):
        self.dataset = dataset
        self.tried = list(tried)
        self.fix = fix
        lines = "\n".join(f"  - {place}" for place in self.tried)
        super().__init__(f"dataset '{dataset}' is not available. Tried, in order:\n{lines}\n{fix}")
