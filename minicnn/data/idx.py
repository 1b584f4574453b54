"""The IDX format of MNIST and Fashion-MNIST, gzip-compressed or raw.

An IDX file is a 4-byte magic number (0, 0, type code, number of dimensions), one big-endian uint32
per dimension, then the values in C order. Images are (N, rows, cols) ubyte, labels (N,) ubyte.
Compression is recognised by content, not by name. Every check names the file and what is wrong.
"""

from __future__ import annotations

import math
import os
import zlib

import numpy as np

from minicnn.data.errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"
DEFLATE_MAX_RATIO = 1032  # deflate's best case: a 258-byte match in 2 bits (zlib's documented limit)
_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_bytes(path: str | os.PathLike):
    """The file's content (bytes-like), gunzipped if it is gzip-compressed; clear errors for empty
    or broken gzip."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise DataFormatError(f"{path}: cannot be read: {error.strerror or error}") from error
    if not data:
        raise DataFormatError(f"{path}: the file is empty (0 bytes); delete it and fetch it again")
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return _gunzip(data)
    except EOFError as error:
        raise DataFormatError(f"{path}: truncated gzip stream ({len(data):,} bytes; the end of the compressed "
                              f"data is missing); delete it and fetch it again") from error
    except (zlib.error, OSError) as error:
        raise DataFormatError(f"{path}: corrupt gzip data ({error}); delete it and fetch it again") from error


def _gunzip(data: bytes, piece: int = 1 << 20) -> memoryview:
    """Decompress a one-member gzip stream straight into a buffer of its final size.

    The size is the stream's trailer (ISIZE, the uncompressed length mod 2^32), so the output is
    never copied or grown: gzip.decompress would hold it about twice while joining. The trailer is
    4 bytes anyone can forge, so it is believed only as far as it can be true: deflate expands at
    most 1032:1, and a larger claim is refused without allocating it (after a pass that keeps no
    output, to tell a truncated file, whose last 4 bytes are no trailer, from a forged one). A wrong
    claim within the bound reserves no more than a genuine stream of that length may need, and the
    buffer is np.empty, whose pages are only committed as they are written; a claim too small is
    caught one piece past it.
    """
    size = int.from_bytes(data[-4:], "little")
    pieces = _inflate(data, piece)
    if size > DEFLATE_MAX_RATIO * len(data):
        try:
            for _ in pieces:
                pass
        except zlib.error:
            pass  # zlib's length check, or any other damage: the impossible claim says more
        raise OSError(f"its trailer claims {size:,} bytes, more than deflate can expand {len(data):,} bytes to "
                      f"(at most {DEFLATE_MAX_RATIO}:1)")
    out = np.empty(size, dtype=np.uint8)
    written = 0
    for chunk in pieces:
        if written + len(chunk) > size:
            raise OSError(f"more data than the gzip trailer's {size:,} bytes")
        out[written : written + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        written += len(chunk)
    if written != size:
        raise OSError(f"{written:,} bytes decompressed, the gzip trailer says {size:,}")
    return memoryview(out)


def _inflate(data: bytes, piece: int):
    """The decompressed gzip stream in chunks of at most `piece` bytes, whatever the ratio (zlib
    checks the CRC and length at the end); EOFError if the stream ends early."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    start = 0
    while not decompressor.eof:
        if decompressor.unconsumed_tail:
            pending = decompressor.unconsumed_tail
        elif start < len(data):
            pending, start = data[start : start + piece], start + piece
        else:
            raise EOFError("the compressed stream ends early")
        yield decompressor.decompress(pending, piece)


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array (read-only, native byte order for multi-byte types)."""
    if len(data) < 4:
        raise DataFormatError(f"{source}: too short for an IDX file ({len(data)} bytes, the header alone is 4+)")
    zero, type_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or type_code not in _TYPES or ndim == 0:
        hint = " (it looks like an HTML page: a failed download?)" if bytes(data[:64]).lstrip()[:1] == b"<" else ""
        raise DataFormatError(
            f"{source}: not an IDX file: magic number 0x{data[:4].hex()} (expected 0x00000801 for labels or "
            f"0x00000803 for images; the file is not gzip-compressed either){hint}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(f"{source}: truncated IDX header: {ndim} dimensions need {header} bytes, found {len(data):,}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[type_code]
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: forged dimensions overflow int64
    if len(data) < expected:
        raise DataFormatError(f"{source}: truncated or corrupt: its IDX header claims an array of shape {shape}, "
                              f"which needs {expected:,} bytes, found {len(data):,}; delete it and fetch it again")
    if len(data) > expected:
        raise DataFormatError(f"{source}: {len(data) - expected:,} unexpected bytes after the IDX array of shape "
                              f"{shape} (expected {expected:,} bytes in all, found {len(data):,})")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gz or raw); ndim, if given, is checked (3 for images, 1 for labels)."""
    path = os.fspath(path)
    array = parse_idx(read_bytes(path), path)
    if ndim is not None and array.ndim != ndim:
        what = {1: "labels (N,)", 3: "images (N, rows, cols)"}.get(ndim, f"a {ndim}-D array")
        raise DataFormatError(f"{path}: holds an array of shape {array.shape}, expected {what}: "
                              "are the image and label files swapped?")
    return array


def read_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike,
                  num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """An MNIST-style split: images (N, 1, rows, cols) uint8 and labels (N,) int64, counts checked."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DataFormatError(f"{os.fspath(images_path)}, {os.fspath(labels_path)}: expected unsigned-byte IDX "
                              f"data, found {images.dtype} images and {labels.dtype} labels")
    if len(images) != len(labels):
        raise DataFormatError(f"{os.fspath(images_path)} holds {len(images):,} images but {os.fspath(labels_path)} "
                              f"holds {len(labels):,} labels: the files do not belong together")
    if len(labels) and labels.max() >= num_classes:
        raise DataFormatError(f"{os.fspath(labels_path)}: label {int(labels.max())} is out of range "
                              f"(expected 0..{num_classes - 1})")
    return images[:, None], labels.astype(np.int64)
