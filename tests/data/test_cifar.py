"""The CIFAR-10 binary reader and archive extraction, on batch files written here."""

import io
import tarfile

import numpy as np
import pytest

from minicnn.data.cifar import RECORD_BYTES, TEST_FILES, TRAIN_FILES, extract_cifar10, read_cifar10, read_cifar10_batch
from minicnn.data.errors import DataFormatError


def batch_bytes(labels, seed=0) -> tuple[bytes, np.ndarray]:
    """A binary batch with these labels and random pixels; also the images (N, 3, 32, 32)."""
    images = np.random.default_rng(seed).integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], images.reshape(len(labels), -1)], axis=1)
    return records.tobytes(), images


def test_records_are_label_then_red_green_blue_planes(tmp_path):
    data, images = batch_bytes([3, 0, 9])
    (tmp_path / "b.bin").write_bytes(data)
    got_images, labels = read_cifar10_batch(tmp_path / "b.bin")
    assert labels.tolist() == [3, 0, 9] and labels.dtype == np.int64
    assert got_images.shape == (3, 3, 32, 32) and np.array_equal(got_images, images)
    assert got_images[1, 2, 0, 0] == data[RECORD_BYTES + 1 + 2 * 1024]  # blue plane's first pixel


def test_several_batches_concatenate_in_order(tmp_path):
    for i, labels in enumerate(([1, 2], [3])):
        (tmp_path / f"{i}.bin").write_bytes(batch_bytes(labels, seed=i)[0])
    images, labels = read_cifar10([tmp_path / "0.bin", tmp_path / "1.bin"])
    assert labels.tolist() == [1, 2, 3] and images.shape == (3, 3, 32, 32)


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (batch_bytes([1, 2])[0][:-100], "6,046 bytes is not a whole number of 3,073-byte records"),
    (batch_bytes([1, 200])[0], "record 1 has label 200, CIFAR-10 labels are 0..9"),
])
def test_broken_batches(tmp_path, data, message):
    (tmp_path / "data_batch_1.bin").write_bytes(data)
    with pytest.raises(DataFormatError, match=message) as error:
        read_cifar10_batch(tmp_path / "data_batch_1.bin")
    assert str(tmp_path / "data_batch_1.bin") in str(error.value)


def write_archive(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_extraction_takes_only_the_batches(tmp_path):
    members = {f"cifar-10-batches-bin/{name}": batch_bytes([i])[0] for i, name in enumerate(TRAIN_FILES + TEST_FILES)}
    members["../../evil.bin"] = b"x"
    members["cifar-10-batches-bin/readme.html"] = b"<html>"
    write_archive(tmp_path / "a.tar.gz", members)
    extract_cifar10(tmp_path / "a.tar.gz", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(TRAIN_FILES + TEST_FILES)
    assert not (tmp_path.parent / "evil.bin").exists()
    assert read_cifar10_batch(tmp_path / "out" / "test_batch.bin")[1].tolist() == [5]


def test_extraction_of_a_wrong_or_broken_archive(tmp_path):
    write_archive(tmp_path / "a.tar.gz", {"cifar-10-batches-bin/data_batch_1.bin": b"x"})
    with pytest.raises(DataFormatError, match="lacks data_batch_2.bin"):
        extract_cifar10(tmp_path / "a.tar.gz", tmp_path / "out")
    (tmp_path / "b.tar.gz").write_bytes((tmp_path / "a.tar.gz").read_bytes()[:50])
    with pytest.raises(DataFormatError, match="cannot be unpacked"):
        extract_cifar10(tmp_path / "b.tar.gz", tmp_path / "out")
