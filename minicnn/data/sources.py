"""Where a dataset's files come from, and the checksums they must match.

`locate` looks, in order, in: `data_dir` (the CLI's --data-dir), $MINICNN_DATA, the cache
($MINICNN_CACHE, else $XDG_CACHE_HOME/minicnn, else ~/.cache/minicnn), known local copies (Debian's
dataset-fashion-mnist), and finally downloads from the public mirrors into the cache. Every candidate
is checked (all files present; each file's decompressed sha256, or its size where no checksum is
published), so a copy that was gzipped again or stored raw is accepted. When all fail it raises
DataUnavailableError listing each place and why it did not do.

$MINICNN_MIRROR (comma-separated base URLs; "{dataset}" is replaced by the dataset's name) replaces
the built-in mirrors, e.g. for a local copy served over HTTP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from minicnn.data.cifar import TEST_FILES, TRAIN_FILES, extract_cifar10
from minicnn.data.download import Progress, check_file, download as download_file
from minicnn.data.errors import DataError, DataUnavailableError, DownloadError


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its name on disk (a ".gz" copy is accepted too) and its content."""

    name: str
    sha256: str | None = None  # of the decompressed content
    size: int | None = None  # bytes of decompressed content


@dataclass(frozen=True)
class Archive:
    """A published archive that unpacks into a dataset's files (md5 and size as the publisher lists)."""

    name: str
    md5: str
    size: int


@dataclass(frozen=True)
class Source:
    dataset: str
    files: tuple[DataFile, ...]
    mirrors: tuple[str, ...]
    folders: tuple[str, ...] = ()  # where inside a data root the files may sit (else the root itself)
    local_copies: tuple[str, ...] = ()
    archive: Archive | None = None  # None: each file is downloaded on its own as <name>.gz

    def file(self, name: str) -> DataFile:
        return next(f for f in self.files if f.name == name)


def _idx_files(sha256s: dict[str, str]) -> tuple[DataFile, ...]:
    sizes = {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
             "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}
    return tuple(DataFile(name, sha256s[name], sizes[name]) for name in sizes)


SOURCES: dict[str, Source] = {
    "mnist": Source(
        "mnist",
        _idx_files({
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        }),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        folders=("mnist", "MNIST/raw"),
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        _idx_files({
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        }),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
        folders=("fashion-mnist", "FashionMNIST/raw"),
        local_copies=("/usr/share/datasets/fashion-mnist",),
    ),
    "cifar10": Source(
        "cifar10",
        tuple(DataFile(name, size=10_000 * 3073) for name in TRAIN_FILES + TEST_FILES),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        folders=("cifar10/cifar-10-batches-bin", "cifar-10-batches-bin", "cifar10"),
        archive=Archive("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", 170_052_171),
    ),
}


def cache_dir() -> Path:
    """Where downloads go: $MINICNN_CACHE, else $XDG_CACHE_HOME/minicnn, else ~/.cache/minicnn."""
    if os.environ.get("MINICNN_CACHE"):
        return Path(os.environ["MINICNN_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "minicnn"


def mirror_urls(source: Source, filename: str, mirrors: Sequence[str] | None = None) -> list[str]:
    """The URLs to try for one file: `mirrors`, else $MINICNN_MIRROR, else the source's own."""
    if mirrors is None and os.environ.get("MINICNN_MIRROR", "").strip():
        mirrors = os.environ["MINICNN_MIRROR"].replace(",", " ").split()
    bases = source.mirrors if mirrors is None else mirrors
    return [base.replace("{dataset}", source.dataset).rstrip("/") + "/" + filename for base in bases]


def _check_folder(folder: Path, files: Sequence[DataFile], verify: bool) -> tuple[dict[str, Path] | None, str]:
    """({name: path}, "") if `folder` holds every file, good; else (None, why not)."""
    found, missing = {}, []
    for f in files:
        path = next((p for p in (folder / f.name, folder / (f.name + ".gz")) if p.is_file()), None)
        if path is None:
            missing.append(f.name)
        else:
            found[f.name] = path
    if missing:
        return None, f"missing {', '.join(missing)} (raw or .gz)"
    if verify:
        for f in files:
            problem = check_file(found[f.name], sha256=f.sha256, size=f.size)
            if problem is not None:
                return None, f"{found[f.name].name} does not match: {problem}"
    return found, ""


def _look(label: str, root: Path, folders: Sequence[str], files, verify: bool, tried: list[str]):
    candidates = [root / sub for sub in folders] + [root]
    existing = [c for c in candidates if c.is_dir()]
    if not existing:
        tried.append(f"{label} {root}: no such folder")
        return None
    for folder in existing:
        found, why = _check_folder(folder, files, verify)
        if found is not None:
            return found
        tried.append(f"{label} {folder}: {why}")
    return None


def _download(source: Source, files: Sequence[DataFile], folder: Path, mirrors, progress, tried: list[str]):
    """Download what the cache folder lacks; None (with the reasons in `tried`) on failure."""
    try:
        if source.archive is not None:
            archive = folder / source.archive.name
            urls = mirror_urls(source, archive.name, mirrors)
            download_file(urls, archive, md5=source.archive.md5, size=source.archive.size, progress=progress)
            extract_cifar10(archive, folder)
            archive.unlink()
        else:
            for f in files:
                if _check_folder(folder, [f], verify=True)[0] is None:
                    (folder / f.name).unlink(missing_ok=True)  # a bad raw copy would shadow the download
                    urls = mirror_urls(source, f.name + ".gz", mirrors)
                    download_file(urls, folder / (f.name + ".gz"), sha256=f.sha256, size=f.size, progress=progress)
    except DownloadError as error:
        tried += [f"download {failure}" for failure in error.failures]
        return None
    except (DataError, OSError) as error:
        tried.append(f"download into {folder}: {error}")
        return None
    found, why = _check_folder(folder, files, verify=True)
    if found is None:
        tried.append(f"download into {folder}: {why}")
    return found


def locate(dataset: str, files: Sequence[str] | None = None, data_dir: str | os.PathLike | None = None, *,
           download: bool = True, progress: Progress | None = None, mirrors: Sequence[str] | None = None,
           verify: bool = True) -> dict[str, Path]:
    """Find (or download) a dataset's files: {file name: path}, each path an existing, checked file.

    files: which of the dataset's files are needed (default all), e.g. only the test split's.
    verify=False skips the checksum of copies found on disk (downloads are always verified).
    """
    if dataset not in SOURCES:
        raise KeyError(f"no known source for dataset '{dataset}' (known: {', '.join(sorted(SOURCES))})")
    source = SOURCES[dataset]
    wanted = [source.file(name) for name in files] if files is not None else list(source.files)
    tried: list[str] = []
    roots = [("data_dir (--data-dir)", data_dir, "not given"),
             ("$MINICNN_DATA", os.environ.get("MINICNN_DATA") or None, "not set")]
    for label, root, absent in roots:
        if root is None:
            tried.append(f"{label}: {absent}")
            continue
        found = _look(label, Path(root).expanduser(), source.folders, wanted, verify, tried)
        if found is not None:
            return found
    cache = cache_dir() / dataset
    places = [("cache", cache, ())] + [("local copy", Path(p), ()) for p in source.local_copies]
    for label, folder, folders in places:
        found = _look(label, folder, folders, wanted, verify, tried)
        if found is not None:
            return found
    if download:
        found = _download(source, wanted, cache, mirrors, progress, tried)
        if found is not None:
            return found
    else:
        tried.append("download: not attempted (download=False)")
    names = ", ".join(f.name + ("" if source.archive else "[.gz]") for f in wanted)
    inside = f" (or DIR/{source.folders[0]})" if source.folders else ""
    fix = (f"Fix: pass data_dir=DIR (--data-dir DIR) or set MINICNN_DATA=DIR, where DIR{inside} holds {names}; "
           f"or connect to the internet (or set MINICNN_MIRROR to a mirror's base URL)"
           f"{'' if download else ' and allow downloading (download=True)'} so that minicnn can download it into {cache}.")
    raise DataUnavailableError(dataset, tried, fix)
