"""The IDX reader on the real MNIST files (raw, gz, gzipped again) and on every kind of broken file."""

import gzip
import re
import shutil
import tracemalloc

import numpy as np
import pytest

from minicnn.data.errors import DataFormatError
from minicnn.data.idx import parse_idx, read_idx, read_idx_pair


@pytest.fixture
def t10k(mnist_copy):
    """(images .gz, labels .gz) of the real MNIST test split, in a writable folder."""
    return mnist_copy / "t10k-images-idx3-ubyte.gz", mnist_copy / "t10k-labels-idx1-ubyte.gz"


def test_real_mnist_test_split(t10k):
    images, labels = read_idx_pair(*t10k)
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.int64
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.max() == 255 and images[0, 0, :4].max() == 0


def test_raw_gz_and_regzipped_read_the_same(t10k, tmp_path):
    raw = gzip.decompress(t10k[0].read_bytes())
    (tmp_path / "raw").write_bytes(raw)
    (tmp_path / "again.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    (tmp_path / "raw-named.gz").write_bytes(raw)
    reference = read_idx(t10k[0])
    for name in ("raw", "again.gz", "raw-named.gz"):
        assert np.array_equal(read_idx(tmp_path / name), reference)


def test_wide_types_are_decoded_big_endian():
    data = b"\x00\x00\x0b\x02" + (2).to_bytes(4, "big") + (1).to_bytes(4, "big") + (258).to_bytes(2, "big") + b"\xff\xfe"
    assert parse_idx(data).tolist() == [[258], [-2]]


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty (0 bytes)"),
    (b"\x00\x00", "too short for an IDX file"),
    (b"\x00\x00\x08\x07xxxx", "truncated IDX header: 7 dimensions need 32 bytes, found 8"),
    (b"<html>404</html>", "not an IDX file: magic number 0x3c68746d (expected 0x00000801 for labels or 0x00000803 "
                          "for images; the file is not gzip-compressed either) (it looks like an HTML page"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "its IDX header claims an array of shape (5,), which needs 13 bytes, "
                                            "found 11"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01abc", "2 unexpected bytes after the IDX array"),
])
def test_broken_files_name_the_file_and_the_problem(tmp_path, data, message):
    path = write(tmp_path / "file", data)
    with pytest.raises(DataFormatError, match=re.escape(message)) as error:
        read_idx(path)
    assert str(error.value).startswith(str(path))


def test_a_truncated_raw_file_says_how_many_bytes_it_needs(t10k, tmp_path):
    path = write(tmp_path / "t10k-images-idx3-ubyte", gzip.decompress(t10k[0].read_bytes())[:1000])
    with pytest.raises(DataFormatError, match="needs 7,840,016 bytes, found 1,000"):
        read_idx(path)


def test_a_truncated_or_corrupt_gz(t10k, tmp_path):
    data = t10k[1].read_bytes()
    with pytest.raises(DataFormatError, match="truncated gzip stream"):
        read_idx(write(tmp_path / "cut.gz", data[:len(data) // 2]))
    corrupt = bytearray(data)
    corrupt[-6] ^= 0xFF  # inside the CRC-32 trailer
    with pytest.raises(DataFormatError, match="corrupt gzip data"):
        read_idx(write(tmp_path / "corrupt.gz", bytes(corrupt)))


def test_a_gz_name_on_a_file_that_is_neither(tmp_path):
    with pytest.raises(DataFormatError, match="not gzip-compressed either"):
        read_idx(write(tmp_path / "labels.gz", b"PK\x03\x04 a zip file"))


def test_pairs_are_checked(t10k, tmp_path):
    images, labels = t10k
    with pytest.raises(DataFormatError, match="expected labels"):
        read_idx_pair(images, images)
    with pytest.raises(DataFormatError, match="are the image and label files swapped"):
        read_idx_pair(labels, labels)
    short = write(tmp_path / "short", b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([1, 2, 3]))
    with pytest.raises(DataFormatError, match=r"holds 10,000 images but .*short holds 3 labels"):
        read_idx_pair(images, short)
    shutil.copy(images, tmp_path / "i.gz")
    bad = write(tmp_path / "bad", b"\x00\x00\x08\x01" + (10_000).to_bytes(4, "big") + bytes([12] * 10_000))
    with pytest.raises(DataFormatError, match="label 12 is out of range"):
        read_idx_pair(tmp_path / "i.gz", bad)


def test_a_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="cannot be read: No such file"):
        read_idx(tmp_path / "absent")


def idx_header(*shape: int) -> bytes:
    """The header of a ubyte IDX array of that shape (dimensions as the file stores them, uint32)."""
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


FORGED = {
    # 65536^4 = 2^64: an int64 product wraps to 0, which matched the 0 data bytes and reached reshape
    "product wraps to 0": (idx_header(65536, 65536, 65536, 65536), "(65536, 65536, 65536, 65536)",
                           "18,446,744,073,709,551,636 bytes"),
    "product wraps negative": (idx_header(*[0xFFFF_FFFF] * 4) + b"x", "(4294967295, 4294967295, 4294967295, "
                               "4294967295)", "340,282,366,604,025,813,516,997,721,482,669,850,645 bytes"),
    "beyond the file": (idx_header(60_000, 28, 28) + bytes(100), "(60000, 28, 28)", "47,040,016 bytes"),
}


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", FORGED)
def test_a_forged_header_is_refused_naming_the_shape_and_the_size(tmp_path, case, compressed):
    data, shape, needs = FORGED[case]
    path = write(tmp_path / "forged", gzip.compress(data) if compressed else data)
    expected = (f"{path}: truncated or corrupt: its IDX header claims an array of shape {shape}, which needs {needs}, "
                f"found {len(data):,}")
    with pytest.raises(DataFormatError, match=re.escape(expected)):
        read_idx(path)
    with pytest.raises(DataFormatError, match=re.escape(f"claims an array of shape {shape}")):
        parse_idx(data)


def forge_trailer(data: bytes, size: int) -> bytes:
    """gzip-compressed `data` whose trailer (ISIZE, the last 4 bytes) claims `size` bytes instead."""
    return gzip.compress(data)[:-4] + size.to_bytes(4, "little")


def test_a_forged_gzip_trailer_is_refused_before_allocating_it(tmp_path):
    data = idx_header(3) + b"abc"
    path = write(tmp_path / "forged.gz", forge_trailer(data, 0xFFFF_FFFF))
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=r"forged.gz: corrupt gzip data \(its trailer claims 4,294,967,295 "
                                                  r"bytes, more than deflate can expand \d+ bytes to"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak:,} bytes allocated"


@pytest.mark.parametrize("claimed", [4, 12, 1000], ids=["less", "one more", "more, within the bound"])
def test_any_other_wrong_trailer_is_corrupt_data(tmp_path, claimed):
    path = write(tmp_path / "forged.gz", forge_trailer(idx_header(3) + b"abc", claimed))
    with pytest.raises(DataFormatError, match="forged.gz: corrupt gzip data"):
        read_idx(path)


def test_the_bound_on_the_trailer_admits_deflates_best_ratio(tmp_path):
    data = idx_header(10_000_000) + bytes(10_000_000)  # zeros: deflate's best case, about 1029:1
    path = write(tmp_path / "zeros.gz", gzip.compress(data, compresslevel=9))
    assert len(data) / path.stat().st_size > 1000
    assert read_idx(path).shape == (10_000_000,)


def test_a_trailer_claiming_too_little_stops_the_decompression_early(tmp_path):
    data = idx_header(50_000_000) + bytes(50_000_000)  # about 49 KB of gzip
    path = write(tmp_path / "small.gz", forge_trailer(data, 12))
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=r"small.gz: corrupt gzip data \(more data than the gzip trailer's 12 "):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak:,} bytes allocated"
