"""Weights on disk in safetensors: `save(module_or_state_dict, path)` and `load(path)` -> state dict.

safetensors is the file format the rest of the ecosystem reads (PyTorch's `safetensors.torch`,
Hugging Face, JAX): 8 bytes giving the header's length N (little-endian), N bytes of JSON naming each
array's dtype, shape and byte range, then the raw little-endian bytes. Loading one runs no code
(unlike a pickle), and the header is checked against the file's size before anything is read.

What minicnn writes into the header's `__metadata__` (string values only, as the format requires):

    format      "minicnn-state-1" for `save`; a training checkpoint has its own (minicnn.train.checkpoint)
    minicnn     the minicnn version that wrote the file
    names       the arrays' names as a JSON list, in state_dict order (safetensors stores them sorted)
    sha256      a checksum of the names and the arrays' bytes: safetensors has none of its own, and a
                flipped bit in a weight would otherwise load without a word

A file written by another tool has none of these and loads all the same. The arrays are stored
under their state_dict names, so a model whose names follow torchvision's (the ResNet, VGG and
AlexNet plugins) loads into its PyTorch twin with `safetensors.torch.load_file`, and back.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as safetensors_bytes

from minicnn import __version__
from minicnn.autograd import Tensor
from minicnn.backend import to_numpy
from minicnn.nn import Module

STATE_FORMAT = "minicnn-state-1"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit: a larger declared header is not one of its files
DTYPES = {  # the safetensors dtype tag of each NumPy dtype both can hold
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16, "U32": np.uint32,
    "I32": np.int32, "U64": np.uint64, "I64": np.int64, "F16": np.float16, "F32": np.float32, "F64": np.float64,
}
TAGS = {np.dtype(dtype): tag for tag, dtype in DTYPES.items()}


class WeightsFileError(ValueError):
    """A file that is not safetensors, is truncated or corrupt, or holds arrays NumPy cannot hold."""


def save(state, path) -> Path:
    """Write a Module's state_dict, or a dict name -> array (NumPy, CuPy or Tensor), to `path` as
    safetensors; GPU arrays are copied to the host. Returns the path.

    Written atomically (minicnn.train.files): a save that fails, for a full disk say, leaves the old
    file whole and raises WriteError (an OSError) naming it. An array safetensors cannot hold (complex,
    strings, objects) is refused by name before anything is written.
    """
    from minicnn.train.files import write_atomically  # lazy: training sits above this module

    if isinstance(state, Module):
        state = state.state_dict()
    elif not isinstance(state, Mapping):
        raise TypeError(f"save takes a minicnn Module or a dict of arrays (a state_dict), not {type(state).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give a file name for the weights, e.g. {path / 'model.safetensors'}")
    data = serialize(state, {"format": STATE_FORMAT})
    write_atomically({path: lambda file: file.write(data)})
    return path


def load(path) -> dict:
    """The state dict in `path`: name -> NumPy array, in the order it was saved, for
    `model.load_state_dict(mc.load(path))`.

    path: a safetensors file (from `save`, from `safetensors.torch.save_file`, any tool's), or a
    checkpoint of `minicnn train` (safetensors, or an older minicnn's .npz), of which it gives the
    model's arrays. Raises FileNotFoundError, or WeightsFileError (a ValueError) naming the file.
    """
    from minicnn.train.checkpoint import is_checkpoint, load_checkpoint  # lazy: training sits above this module

    path = Path(path)
    if path.is_dir() or is_checkpoint(path):
        return load_checkpoint(path).model
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} not found")
    return read(path)[0]


def serialize(arrays: Mapping, metadata: dict) -> bytes:
    """The safetensors bytes of `arrays` (name -> NumPy, CuPy array or Tensor), with `metadata`
    (str -> str), minicnn's version, the names' order and their checksum in the header; ValueError
    naming an array whose dtype safetensors cannot hold."""
    host = {}
    for name, value in arrays.items():
        if not isinstance(name, str):
            raise TypeError(f"array names must be strings, got {name!r} ({type(name).__name__})")
        array = to_numpy(value.data if isinstance(value, Tensor) else value)
        native = array.dtype.newbyteorder("=")
        if native not in TAGS:
            raise ValueError(f"'{name}' holds {array.dtype} values, which safetensors cannot store; it takes "
                             f"{', '.join(np.dtype(d).name for d in DTYPES.values())}: convert it first")
        host[name] = np.asarray(array, dtype=native, order="C")  # ascontiguousarray would make a scalar (1,)
    header = {**metadata, "minicnn": __version__, "names": json.dumps(list(host)), "sha256": checksum(host)}
    return safetensors_bytes(host, metadata=header)


def checksum(arrays: dict) -> str:
    """SHA-256 of each array's name, dtype, shape and little-endian bytes, in sorted name order (so
    it does not depend on where in the file safetensors put each array)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = arrays[name]
        little = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        digest.update(json.dumps([name, TAGS[little.dtype.newbyteorder("=")], list(little.shape)]).encode("utf-8"))
        digest.update(little.data if little.size else b"")
    return digest.hexdigest()


def is_safetensors(path) -> bool:
    """Whether the file at `path` starts as a safetensors file does; False for anything else, or a
    file that cannot be read."""
    return _declared_header_length(path) is not None


def read(path) -> tuple[dict, dict]:
    """(arrays, metadata) of the safetensors file `path`: name -> NumPy array in the order it was
    saved, and the header's `__metadata__` ({} when it has none).

    Raises WeightsFileError naming the file when it is not safetensors, is cut short or corrupt
    (a header whose byte ranges overlap, leave gaps or run past the end), or holds a dtype NumPy has
    no type for (bfloat16, float8), which it names.
    """
    path = Path(path)
    declared = _declared_header_length(path)
    if declared is None:
        raise WeightsFileError(f"{path} is not a safetensors file (it does not start with a safetensors header)")
    if 8 + declared > path.stat().st_size:
        raise WeightsFileError(f"{path} is corrupt or truncated: its header alone is {declared} bytes but the file has "
                               f"{path.stat().st_size}, so it was cut short")
    try:
        with safe_open(str(path), framework="np") as file:
            metadata = file.metadata() or {}
            names = list(file.keys())
            tags = {name: file.get_slice(name).get_dtype() for name in names}
            unknown = {name: tag for name, tag in tags.items() if tag not in DTYPES}
            if unknown:
                shown = ", ".join(f"'{name}' ({tag})" for name, tag in list(unknown.items())[:5])
                raise WeightsFileError(f"{path} holds arrays of a type NumPy cannot hold: {shown}; convert them to "
                                       "float32 before saving (in PyTorch: {k: v.float() for k, v in state.items()})")
            arrays = {name: np.array(file.get_tensor(name)) for name in names}
    except SafetensorError as error:
        raise WeightsFileError(f"{path} is corrupt or truncated ({error}): it was cut short or altered") from None
    if "sha256" in metadata and checksum(arrays) != metadata["sha256"]:
        raise WeightsFileError(f"{path} is corrupt: its arrays do not match the checksum its header records, so "
                               "bytes were damaged or altered after it was written")
    return {name: arrays[name] for name in _saved_order(metadata, names)}, metadata


def read_metadata(path) -> dict | None:
    """The header's `__metadata__` of the safetensors file `path` ({} when it has none), reading
    nothing else; None when the file is not a readable safetensors file."""
    if not is_safetensors(path):
        return None
    try:
        with safe_open(str(path), framework="np") as file:
            return file.metadata() or {}
    except SafetensorError:
        return None


def _declared_header_length(path) -> int | None:
    """The header length a safetensors file declares in its first 8 bytes, within the format's limit and
    followed by the header's "{"; None when the file does not start so or cannot be read."""
    try:
        with open(path, "rb") as file:
            start = file.read(9)
    except OSError:
        return None
    if len(start) < 9 or start[8:] != b"{":
        return None
    length = struct.unpack("<Q", start[:8])[0]
    return length if length <= MAX_HEADER_BYTES else None


def _saved_order(metadata: dict, names: list) -> list:
    """The order `serialize` recorded in "names", or the file's own for files of other tools (or edited
    since, so that the list no longer names the same arrays)."""
    try:
        order = json.loads(metadata.get("names", "null"))
    except json.JSONDecodeError:
        return names
    return order if isinstance(order, list) and sorted(map(str, order)) == sorted(names) else names
