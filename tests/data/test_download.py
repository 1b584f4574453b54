"""download(): against a local mirror of the real MNIST files: verified, atomic, resumed, refused."""

import gzip
import hashlib
import os

import pytest

from minicnn.data.download import check_file, content_digest, download
from minicnn.data.errors import DownloadError
from minicnn.data.sources import SOURCES

LABELS = SOURCES["mnist"].file("t10k-labels-idx1-ubyte")
IMAGES = SOURCES["mnist"].file("t10k-images-idx3-ubyte")


def test_download_verifies_the_decompressed_content_and_renames_atomically(mirror, tmp_path):
    target = tmp_path / "out" / "t10k-images-idx3-ubyte.gz"
    seen = []
    path = download(mirror.url + "t10k-images-idx3-ubyte.gz", target, sha256=IMAGES.sha256, size=IMAGES.size,
                    progress=lambda done, total: seen.append((done, total)))
    assert path == str(target) and target.read_bytes() == (mirror.root / "t10k-images-idx3-ubyte.gz").read_bytes()
    assert not (tmp_path / "out" / "t10k-images-idx3-ubyte.gz.part").exists()
    assert seen[0] == (0, 1_648_877) and seen[-1] == (1_648_877, 1_648_877)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_a_bad_checksum_deletes_the_download_and_names_both_digests(mirror, tmp_path):
    content = bytearray(gzip.decompress((mirror.root / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    content[100] = (content[100] + 1) % 10
    (mirror.root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(content)))
    target = tmp_path / "out" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DownloadError, match="checksum mismatch") as error:
        download(mirror.url + "t10k-labels-idx1-ubyte.gz", target, sha256=LABELS.sha256)
    assert LABELS.sha256 in str(error.value) and hashlib.sha256(content).hexdigest() in str(error.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_an_interrupted_download_resumes_with_a_range_request(mirror, tmp_path):
    mirror.cut["/t10k-images-idx3-ubyte.gz"] = 100_000
    target = tmp_path / "t10k-images-idx3-ubyte.gz"
    download(mirror.url + "t10k-images-idx3-ubyte.gz", target, sha256=IMAGES.sha256)
    assert mirror.requests == [("/t10k-images-idx3-ubyte.gz", None), ("/t10k-images-idx3-ubyte.gz", "bytes=100000-")]
    assert check_file(target, sha256=IMAGES.sha256, size=IMAGES.size) is None


def test_a_server_that_ignores_range_sends_the_file_again(mirror, tmp_path):
    mirror.cut["/t10k-labels-idx1-ubyte.gz"] = 1000
    mirror.ignore_range = True
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    download(mirror.url + "t10k-labels-idx1-ubyte.gz", target, sha256=LABELS.sha256)
    assert len(mirror.requests) == 2 and check_file(target, sha256=LABELS.sha256) is None


def test_a_download_interrupted_past_its_attempts_keeps_the_part_for_next_time(mirror, tmp_path):
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    mirror.cut["/t10k-labels-idx1-ubyte.gz"] = 1000
    with pytest.raises(DownloadError, match="closed before the end"):
        download(mirror.url + "t10k-labels-idx1-ubyte.gz", target, sha256=LABELS.sha256, attempts=1)
    assert not target.exists() and (tmp_path / "t10k-labels-idx1-ubyte.gz.part").stat().st_size == 1000
    download(mirror.url + "t10k-labels-idx1-ubyte.gz", target, sha256=LABELS.sha256)
    assert mirror.requests[-1][1] == "bytes=1000-" and check_file(target, sha256=LABELS.sha256) is None


def test_a_stale_part_longer_than_the_file_is_started_over(mirror, tmp_path):
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "t10k-labels-idx1-ubyte.gz.part").write_bytes(b"x" * 10_000)
    download(mirror.url + "t10k-labels-idx1-ubyte.gz", target, sha256=LABELS.sha256)
    assert check_file(target, sha256=LABELS.sha256) is None


def test_the_next_mirror_is_tried_and_every_failure_is_named(mirror, closed_port_url, tmp_path):
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    name = "t10k-labels-idx1-ubyte.gz"
    urls = [closed_port_url + name, mirror.url + "missing.gz", mirror.url + name]
    download(urls, target, sha256=LABELS.sha256)
    assert target.exists()
    with pytest.raises(DownloadError) as error:
        download(urls[:2], tmp_path / "other.gz", sha256=LABELS.sha256)
    assert f"{urls[0]}: unreachable" in str(error.value) and f"{urls[1]}: HTTP 404" in str(error.value)


def test_md5_is_of_the_file_as_served(mirror, tmp_path):
    data = (mirror.root / "t10k-labels-idx1-ubyte.gz").read_bytes()
    target = tmp_path / "labels.gz"
    download(mirror.url + "t10k-labels-idx1-ubyte.gz", target, md5=hashlib.md5(data).hexdigest(), size=len(data))
    with pytest.raises(DownloadError, match="md5 is"):
        download(mirror.url + "t10k-labels-idx1-ubyte.gz", tmp_path / "again.gz", md5="0" * 32)


def test_content_digest_accepts_raw_and_regzipped_copies(shared_mnist, tmp_path):
    raw = gzip.decompress((shared_mnist / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "raw").write_bytes(raw)
    (tmp_path / "again.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    for name in ("raw", "again.gz"):
        assert content_digest(tmp_path / name) == (LABELS.sha256, LABELS.size)
    (tmp_path / "cut.gz").write_bytes((tmp_path / "again.gz").read_bytes()[:-20])
    assert "truncated gzip" in check_file(tmp_path / "cut.gz", sha256=LABELS.sha256)


def test_content_digest_is_remembered_across_a_rename_and_recomputed_after_a_change(tmp_path, monkeypatch):
    part, final = tmp_path / "x.gz.part", tmp_path / "x.gz"
    part.write_bytes(gzip.compress(b"minicnn" * 1000))
    first = content_digest(part)
    os.replace(part, final)  # how a finished download is moved into place
    monkeypatch.setattr(hashlib, "new", lambda *args: pytest.fail("the renamed file was hashed again"))
    assert content_digest(final) == first
    monkeypatch.undo()
    final.write_bytes(gzip.compress(b"other"))
    assert content_digest(final) == (hashlib.sha256(b"other").hexdigest(), 5)
