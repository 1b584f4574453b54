"""The built-in datasets plugin (minicnn/plugin/builtin_datasets.py): registration, and each factory end to
end (files, mirror, cache). It sits here, beside the data fixtures (mirror, isolated caches) it needs."""

import dataclasses
import gzip
import hashlib
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minicnn.plugin.manager
from minicnn.plugin import builtin_datasets
from minicnn.data import ArrayDataset, DataFormatError, DataUnavailableError, load_dataset
from minicnn.data.cifar import TEST_FILES, TRAIN_FILES
from minicnn.data.sources import SOURCES


def test_the_plugin_registers_five_datasets():
    registered = {}
    builtin_datasets.minicnn_register_datasets(
        lambda name, factory, **kw: registered.setdefault(name, (factory, kw)))
    assert sorted(registered) == ["cifar10", "digits", "fashion-mnist", "image-folder", "mnist"]
    assert registered["cifar10"][1]["input_size"] == (3, 32, 32) and registered["mnist"][1]["description"]


def test_load_dataset_goes_through_the_registry(monkeypatch):
    monkeypatch.setitem(minicnn.plugin.manager.BUILTIN_PLUGINS, "datasets", "minicnn.plugin.builtin_datasets")
    monkeypatch.setattr(minicnn.plugin.manager, "_system", None)
    data = load_dataset("digits", "test")
    assert isinstance(data, ArrayDataset) and len(data) == 359 and data.input_size == (1, 28, 28)
    provided = minicnn.plugin.manager.plugin_system().plugins["datasets"].provides["datasets"]
    assert sorted(provided) == ["cifar10", "digits", "fashion-mnist", "image-folder", "mnist"]


def test_digits_is_offline_and_takes_the_common_options():
    train = builtin_datasets.digits("train", data_dir="/nowhere", download=False, progress=print)
    assert len(train) == 1438 and train.classes == [str(d) for d in range(10)]
    with pytest.raises(ValueError, match="digits: unknown split 'valid' \\(splits: train, test\\)"):
        builtin_datasets.digits("valid")


def test_mnist_test_split_downloaded_from_a_mirror_then_cached(mirror):
    progress = []
    data = builtin_datasets.mnist("test", mirrors=[mirror.url], progress=lambda done, total: progress.append(total))
    assert len(data) == 10_000 and data.input_size == (1, 28, 28) and data.num_classes == 10
    assert set(progress) == {1_648_877, 4_542}
    again = builtin_datasets.mnist("test", mirrors=[mirror.url])
    assert len(mirror.requests) == 2 and np.array_equal(again.labels, data.labels)


def test_mnist_train_split_from_the_real_files(shared_mnist):
    data = builtin_datasets.mnist("train", data_dir=shared_mnist, download=False)
    assert data.images.shape == (60_000, 1, 28, 28) and data.labels[:5].tolist() == [5, 0, 4, 1, 9]


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_mnist_unverified_files_with_a_forged_header_are_refused(tmp_path, compressed):
    """verify=False skips the checksum, so the reader's own checks are all that stand in the way."""
    header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (65536, 65536, 65536 * 65536 - 1))
    labels = b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + bytes([1, 2])
    suffix = ".gz" if compressed else ""
    for name, data in (("t10k-images-idx3-ubyte", header), ("t10k-labels-idx1-ubyte", labels)):
        (tmp_path / (name + suffix)).write_bytes(gzip.compress(data) if compressed else data)
    images = tmp_path / f"t10k-images-idx3-ubyte{suffix}"
    with pytest.raises(DataFormatError, match=re.escape(f"{images}: truncated or corrupt: its IDX header claims an "
                                                        "array of shape (65536, 65536, 4294967295)")):
        builtin_datasets.mnist("test", data_dir=tmp_path, download=False, verify=False)


def test_mnist_offline_raises_the_error_the_trainer_falls_back_on(closed_port_url):
    with pytest.raises(DataUnavailableError) as error:
        builtin_datasets.mnist("test", mirrors=[closed_port_url])
    assert error.value.dataset == "mnist" and "unreachable" in error.value.tried[-1]


def test_fashion_mnist_from_debian():
    if not Path(SOURCES["fashion-mnist"].local_copies[0]).is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    data = builtin_datasets.fashion_mnist("test", download=False)
    assert len(data) == 10_000 and data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"


def cifar_archive(tmp_path):
    """A small stand-in for cifar-10-binary.tar.gz: two records per batch."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i, name in enumerate(TRAIN_FILES + TEST_FILES):
            records = rng.integers(0, 256, size=(2, 3073), dtype=np.uint8)
            records[:, 0] = [i, 9 - i]
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = records.size
            tar.addfile(info, io.BytesIO(records.tobytes()))
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "cifar-10-binary.tar.gz").write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_cifar10_downloaded_as_an_archive_extracted_into_the_cache(tmp_path, monkeypatch, isolated, serve):
    archive = cifar_archive(tmp_path)
    source = SOURCES["cifar10"]
    monkeypatch.setitem(SOURCES, "cifar10", dataclasses.replace(
        source, files=tuple(dataclasses.replace(f, size=2 * 3073) for f in source.files),
        archive=dataclasses.replace(source.archive, md5=hashlib.md5(archive).hexdigest(), size=len(archive))))
    server = serve(tmp_path / "served")
    test = builtin_datasets.cifar10("test", mirrors=[server.url])
    train = builtin_datasets.cifar10("train", mirrors=[server.url])
    assert server.paths() == ["/cifar-10-binary.tar.gz"]
    assert test.labels.tolist() == [5, 4] and test.classes[0] == "airplane" and test.input_size == (3, 32, 32)
    assert train.labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert sorted(p.name for p in (isolated / "cifar10").iterdir()) == sorted(TRAIN_FILES + TEST_FILES)


def test_cifar10_with_a_wrong_archive_is_unavailable(tmp_path, isolated, serve):
    cifar_archive(tmp_path)
    server = serve(tmp_path / "served")
    expected = r"cifar-10-binary.tar.gz: checksum mismatch: [\d,]+ bytes, expected 170,052,171"
    with pytest.raises(DataUnavailableError, match=expected):
        builtin_datasets.cifar10("test", mirrors=[server.url])
    assert list((isolated / "cifar10").iterdir()) == []


def write_png(path, value, size=(6, 6)):
    """A grey PNG of one value; a size (h, w, 3) makes it RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)


def test_image_folder_flat_layout_is_the_train_split(tmp_path):
    write_png(tmp_path / "pics" / "b" / "1.png", 10)
    write_png(tmp_path / "pics" / "a" / "1.png", 20, size=(9, 9))
    data = builtin_datasets.image_folder("train", root=tmp_path / "pics", size=6)
    assert data.classes == ["a", "b"] and data.input_size == (1, 6, 6) and data.labels.tolist() == [0, 1]
    assert len(builtin_datasets.image_folder(data_dir=tmp_path / "pics", size=6)) == 2
    with pytest.raises(DataUnavailableError, match="are the train split only"):
        builtin_datasets.image_folder("test", root=tmp_path / "pics")


def test_image_folder_train_and_test_share_the_train_classes(tmp_path):
    for split, classes in (("train", "abc"), ("test", "ac")):
        for name in classes:
            write_png(tmp_path / split / name / "x.png", ord(name))
    test = builtin_datasets.image_folder("test", root=tmp_path)
    assert test.classes == ["a", "b", "c"] and test.labels.tolist() == [0, 2]


def test_image_folder_needs_an_existing_root(tmp_path):
    with pytest.raises(ValueError, match="image-folder needs root=FOLDER"):
        builtin_datasets.image_folder()
    with pytest.raises(DataUnavailableError, match="no such folder"):
        builtin_datasets.image_folder(root=tmp_path / "absent")


def test_image_folder_splits_share_the_channels_whichever_holds_the_colour(tmp_path):
    write_png(tmp_path / "train" / "a" / "1.png", 10)
    write_png(tmp_path / "test" / "a" / "1.png", 20, size=(6, 6, 3))
    write_png(tmp_path / "rgb-train" / "train" / "a" / "1.png", 30, size=(6, 6, 3))
    write_png(tmp_path / "rgb-train" / "test" / "a" / "1.png", 40)
    for root in (tmp_path, tmp_path / "rgb-train"):
        train, test = (builtin_datasets.image_folder(split, root=root) for split in ("train", "test"))
        assert train.input_size == test.input_size == (3, 6, 6)
    assert builtin_datasets.image_folder("test", root=tmp_path, channels=1).input_size == (1, 6, 6)


def test_image_folder_splits_share_the_size_or_are_refused(tmp_path):
    write_png(tmp_path / "train" / "a" / "1.png", 10)
    write_png(tmp_path / "test" / "a" / "1.png", 20, size=(8, 8))
    expected = re.escape(f"{tmp_path / 'train' / 'a' / '1.png'} is 6x6, {tmp_path / 'test' / 'a' / '1.png'} is 8x8; "
                         "pass size=(h, w) to resize them all")
    for split in ("train", "test"):
        with pytest.raises(DataFormatError, match=expected):
            builtin_datasets.image_folder(split, root=tmp_path)
        assert builtin_datasets.image_folder(split, root=tmp_path, size=(4, 5)).input_size == (1, 4, 5)


def test_image_folder_test_classes_must_be_train_classes(tmp_path):
    for split, name in (("train", "cat"), ("train", "dog"), ("test", "cat"), ("test", "zebra")):
        write_png(tmp_path / split / name / "1.png", 10)
    expected = re.escape(f"{tmp_path / 'test'}: class folders ['zebra'] have no counterpart in {tmp_path / 'train'}, "
                         "whose folders are the classes ['cat', 'dog']")
    with pytest.raises(DataFormatError, match=expected):
        builtin_datasets.image_folder("test", root=tmp_path)


def test_image_folder_an_empty_train_class_is_refused_an_empty_test_class_allowed(tmp_path):
    for split in ("train", "test"):
        write_png(tmp_path / split / "cat" / "1.png", 10)
        (tmp_path / split / "dog").mkdir()
    with pytest.raises(DataFormatError, match=re.escape(f"{tmp_path / 'train' / 'dog'}: class folder with no images")):
        builtin_datasets.image_folder("test", root=tmp_path)
    write_png(tmp_path / "train" / "dog" / "1.png", 20)
    test = builtin_datasets.image_folder("test", root=tmp_path)
    assert test.classes == ["cat", "dog"] and test.labels.tolist() == [0]
