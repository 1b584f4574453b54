"""CIFAR-10's binary format ("version for C programs"): data_batch_1..5.bin and test_batch.bin.

Each file is a run of 3,073-byte records: one label byte (0..9), then 3,072 pixel bytes, the 32x32
red plane, then green, then blue (row-major), which is (3, 32, 32) as it stands. The official files
hold 10,000 records each. Reading never unpickles anything.
"""

from __future__ import annotations

import os
import tarfile

import numpy as np

from minicnn.data.errors import DataFormatError

RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    path = os.fspath(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise DataFormatError(f"{path}: cannot be read: {error.strerror or error}") from error
    if data.size == 0:
        raise DataFormatError(f"{path}: the file is empty (0 bytes); delete it and fetch it again")
    if data.size % RECORD_BYTES:
        raise DataFormatError(
            f"{path}: {data.size:,} bytes is not a whole number of {RECORD_BYTES:,}-byte records (1 label byte + "
            f"3,072 pixel bytes): truncated or not a CIFAR-10 binary batch (an official batch is "
            f"{10_000 * RECORD_BYTES:,} bytes); delete it and fetch it again")
    records = data.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        bad = int(np.argmax(labels >= len(CLASSES)))
        raise DataFormatError(f"{path}: record {bad:,} has label {labels[bad]}, CIFAR-10 labels are 0..9 "
                              "(is this CIFAR-100's binary format, which has two label bytes?)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def read_cifar10(paths) -> tuple[np.ndarray, np.ndarray]:
    """Several batches concatenated in the order given."""
    parts = [read_cifar10_batch(p) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def extract_cifar10(archive: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Take the six binary batches out of cifar-10-binary.tar.gz into `destination`.

    Only regular members with those exact file names are written (whatever folder they sit in), so a
    hostile archive cannot write elsewhere; each file appears under its final name only when complete.
    """
    wanted = set(TRAIN_FILES + TEST_FILES)
    found = set()
    os.makedirs(destination, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if not member.isfile() or name not in wanted or name in found:
                    continue
                target = os.path.join(destination, name)
                with tar.extractfile(member) as source, open(target + ".part", "wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                os.replace(target + ".part", target)
                found.add(name)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataFormatError(f"{os.fspath(archive)}: cannot be unpacked ({error}); delete it and fetch it again") from error
    missing = sorted(wanted - found)
    if missing:
        raise DataFormatError(f"{os.fspath(archive)}: is not the CIFAR-10 binary archive: it lacks {', '.join(missing)}")
