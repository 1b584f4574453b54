"""locate(): the order of places, each candidate checked, download into the cache, clear failure."""

import dataclasses
import gzip
import shutil
from pathlib import Path

import pytest

from minicnn.data import sources
from minicnn.data.errors import DataUnavailableError
from minicnn.data.sources import SOURCES, cache_dir, locate, mirror_urls

TEST_SPLIT = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
LABELS = ["t10k-labels-idx1-ubyte"]


def copy_labels(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "t10k-labels-idx1-ubyte.gz", folder)
    return folder


@pytest.fixture
def local_copy(monkeypatch):
    """Point mnist's known local copies at a folder of the test's choosing."""
    def point(folder: Path):
        monkeypatch.setitem(SOURCES, "mnist", dataclasses.replace(SOURCES["mnist"], local_copies=(str(folder),)))
    return point


def test_the_order_is_data_dir_env_cache_local_copy_then_download(mnist_copy, tmp_path, monkeypatch, isolated,
                                                                   local_copy, mirror):
    places = {name: copy_labels(mnist_copy, tmp_path / name) for name in ("given", "env", "local")}
    copy_labels(mnist_copy, isolated / "mnist")
    local_copy(places["local"])
    monkeypatch.setenv("MINICNN_DATA", str(places["env"]))
    found = lambda **kw: locate("mnist", LABELS, mirrors=[mirror.url], **kw)[LABELS[0]].parent  # noqa: E731
    assert found(data_dir=places["given"]) == places["given"]
    assert found() == places["env"]
    monkeypatch.delenv("MINICNN_DATA")
    assert found() == isolated / "mnist"
    shutil.rmtree(isolated / "mnist")
    assert found() == places["local"]
    local_copy(tmp_path / "nowhere")
    assert found() == isolated / "mnist" and mirror.paths() == ["/t10k-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw"])
def test_a_data_root_may_hold_the_files_in_a_dataset_folder(mnist_copy, tmp_path, layout):
    folder = copy_labels(mnist_copy, tmp_path / "root" / layout)
    assert locate("mnist", LABELS, tmp_path / "root", download=False)[LABELS[0]].parent == folder


def test_raw_and_regzipped_copies_pass_the_checksum(mnist_copy, tmp_path):
    raw = gzip.decompress((mnist_copy / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "t10k-labels-idx1-ubyte").write_bytes(raw)
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw, compresslevel=9, mtime=1))
    for name in ("raw", "again"):
        assert locate("mnist", LABELS, tmp_path / name, download=False)[LABELS[0]].parent == tmp_path / name


def test_a_bad_candidate_is_skipped_with_its_reason(mnist_copy, tmp_path, monkeypatch):
    bad = copy_labels(mnist_copy, tmp_path / "bad")
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 8))
    good = copy_labels(mnist_copy, tmp_path / "good")
    monkeypatch.setenv("MINICNN_DATA", str(good))
    assert locate("mnist", LABELS, bad, download=False)[LABELS[0]].parent == good
    monkeypatch.delenv("MINICNN_DATA")
    with pytest.raises(DataUnavailableError) as error:
        locate("mnist", LABELS, bad, download=False)
    reason = "t10k-labels-idx1-ubyte.gz does not match: 12 bytes of content, expected 10,008"
    assert f"data_dir (--data-dir) {bad}: {reason}" in error.value.tried


def test_download_fills_the_cache_and_the_second_call_is_a_cache_hit(mirror, isolated, monkeypatch):
    monkeypatch.setenv("MINICNN_MIRROR", mirror.url)
    found = locate("mnist", TEST_SPLIT)
    assert {p.parent for p in found.values()} == {isolated / "mnist"}
    cached = sorted(p.name for p in (isolated / "mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    requests = len(mirror.requests)
    assert locate("mnist", TEST_SPLIT) == found and len(mirror.requests) == requests == 2


def test_a_corrupt_cached_file_is_downloaded_again(mirror, isolated):
    (isolated / "mnist").mkdir(parents=True)
    (isolated / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    found = locate("mnist", LABELS, mirrors=[mirror.url])
    assert found[LABELS[0]].read_bytes() == (mirror.root / "t10k-labels-idx1-ubyte.gz").read_bytes()


def test_a_bad_checksum_from_the_mirror_caches_nothing(mirror, isolated):
    (mirror.root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    with pytest.raises(DataUnavailableError, match="checksum mismatch"):
        locate("mnist", LABELS, mirrors=[mirror.url])
    assert list((isolated / "mnist").iterdir()) == []


def test_an_interrupted_download_is_resumed(mirror, isolated):
    mirror.cut["/t10k-images-idx3-ubyte.gz"] = 500_000
    found = locate("mnist", TEST_SPLIT, mirrors=[mirror.url])
    assert found["t10k-images-idx3-ubyte"].stat().st_size == 1_648_877
    assert ("/t10k-images-idx3-ubyte.gz", "bytes=500000-") in mirror.requests


def test_offline_lists_every_place_tried_and_the_fix(closed_port_url, isolated):
    with pytest.raises(DataUnavailableError) as error:
        locate("mnist", TEST_SPLIT, mirrors=[closed_port_url])
    assert error.value.tried[:3] == ["data_dir (--data-dir): not given", "$MINICNN_DATA: not set",
                                     f"cache {isolated / 'mnist'}: no such folder"]
    assert f"{closed_port_url}t10k-images-idx3-ubyte.gz: unreachable" in error.value.tried[-1]
    message = str(error.value)
    assert "--data-dir DIR" in message and "MINICNN_DATA=DIR" in message and "connect to the internet" in message
    assert not list((isolated / "mnist").glob("*.gz"))


def test_download_false_says_so(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"download: not attempted \(download=False\)") as error:
        locate("mnist", LABELS, tmp_path / "nothing", download=False)
    assert f"data_dir (--data-dir) {tmp_path / 'nothing'}: no such folder" in error.value.tried


def test_debian_fashion_mnist_is_found_as_a_local_copy():
    folder = Path(SOURCES["fashion-mnist"].local_copies[0])
    if not folder.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    found = locate("fashion-mnist", ["t10k-labels-idx1-ubyte"], download=False)
    assert found["t10k-labels-idx1-ubyte"] == folder / "t10k-labels-idx1-ubyte.gz"


def test_cache_dir_and_mirror_overrides(monkeypatch, tmp_path):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("MINICNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "minicnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "minicnn"
    assert mirror_urls(SOURCES["mnist"], "a.gz")[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/a.gz"
    monkeypatch.setenv("MINICNN_MIRROR", "http://here/{dataset}, http://there/")
    assert mirror_urls(SOURCES["cifar10"], "b") == ["http://here/cifar10/b", "http://there/b"]
    assert mirror_urls(SOURCES["mnist"], "c", ["http://given"]) == ["http://given/c"]


def test_unknown_dataset():
    with pytest.raises(KeyError, match="known: cifar10, fashion-mnist, mnist"):
        sources.locate("imagenet")
