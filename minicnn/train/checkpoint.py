"""Checkpoints: one safetensors file (minicnn.serialization) plus a JSON sidecar for people and tools.
Written atomically (minicnn.train.files): both go to temporary files, flushed to disk, then the
sidecar and last the checkpoint are renamed over the old ones, so a run killed at any moment leaves
the previous checkpoint intact, and a sidecar can be ahead of its checkpoint only until that epoch is
written again (the safetensors file is the checkpoint).

Inside the file: the model's state_dict under its own names, so that a PyTorch user gets the model's
tensors, named as torchvision names them, with
`{k: v for k, v in safetensors.torch.load_file(path).items() if not k.startswith("optimizer/")}`,
and `mc.load(path)` gives them directly; the optimizer's arrays under `optimizer/<name>`; and in
the header's metadata the format, minicnn's version, and `checkpoint`: the JSON metadata (epoch,
configuration, optimizer settings, random-generator state, metrics), so the file alone is a complete
checkpoint.

Checkpoints of earlier minicnn versions are .npz archives (`model/<name>`, `optimizer/<name>`,
`__meta__` as UTF-8 JSON bytes), read with allow_pickle=False: they still load, evaluate and resume.
Which of the two a file is, is read from its first bytes, never from its name.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minicnn.backend import get_array_module
from minicnn.serialization import STATE_FORMAT, WeightsFileError, is_safetensors, read, read_metadata, serialize
from minicnn.train.files import write_atomically

FORMAT = "minicnn-checkpoint-2"       # safetensors
NPZ_FORMAT = "minicnn-checkpoint-1"   # the .npz of earlier versions
OPTIMIZER_PREFIX = "optimizer/"
NUMERIC_KINDS = "biufc"  # bool, signed and unsigned integers, floats, complex: what a tensor can hold
ZIP_MAGIC = b"PK\x03\x04"  # how every .npz starts: a zip archive's first entry


def first_non_finite(arrays: dict) -> str | None:
    """The name of the first floating-point array in `arrays` holding a NaN or an infinity, or None.

    arrays: name -> NumPy or CuPy array (a state_dict); other kinds cannot hold either.
    """
    for name, value in arrays.items():
        if value.dtype.kind in "fc" and not bool(get_array_module(value).isfinite(value).all()):
            return name
    return None


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a minicnn checkpoint."""


@dataclass
class Checkpoint:
    model: dict          # name -> np.ndarray (a model state_dict)
    optimizer: dict      # {"config": JSON-able dict, "arrays": name -> np.ndarray}
    meta: dict           # epoch, config, rng state, metrics...


def save_checkpoint(path, model_state: dict, optimizer_state: dict | None, meta: dict) -> Path:
    """Write `path` (safetensors) and its sidecar (.json) atomically, the checkpoint last; returns its
    path. Raises WriteError (an OSError) naming the file when the disk is full, leaving the old pair."""
    path = Path(path)
    clash = [name for name in model_state if name.startswith(OPTIMIZER_PREFIX)]
    if clash:
        raise ValueError(f"model state name '{clash[0]}' starts with '{OPTIMIZER_PREFIX}', which a checkpoint keeps "
                         "for the optimizer's arrays: rename that submodule")
    meta = {"format": FORMAT, **meta, "optimizer": (optimizer_state or {}).get("config")}
    text = json.dumps(meta, indent=2, sort_keys=True)
    arrays = dict(model_state)
    for name, value in (optimizer_state or {}).get("arrays", {}).items():
        arrays[OPTIMIZER_PREFIX + name] = value
    data = serialize(arrays, {"format": FORMAT, "checkpoint": json.dumps(meta, sort_keys=True)})
    write_atomically({path.with_suffix(".json"): lambda file: file.write(text.encode("utf-8")),
                      path: lambda file: file.write(data)})
    return path


def is_checkpoint(path) -> bool:
    """Whether `path` is a file holding a minicnn checkpoint, of either format; only its header is read."""
    path = Path(path)
    if not path.is_file():
        return False
    if is_safetensors(path):
        return (read_metadata(path) or {}).get("format") == FORMAT
    try:
        with zipfile.ZipFile(path) as archive:
            return "__meta__.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def is_checkpoint_file(path) -> bool:
    """Whether the file at `path` is, by its first bytes, safetensors or an .npz archive: what a
    checkpoint is, whatever its name (its content is checked when it loads)."""
    if is_safetensors(path):
        return True
    try:
        with open(path, "rb") as file:
            return file.read(4) == ZIP_MAGIC or zipfile.is_zipfile(path)  # a cut archive, or an empty one
    except OSError:
        return False


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`, or an earlier version's .npz, with a clear
    error for anything else."""
    path = Path(path)
    if path.is_dir():
        from minicnn.train.run_folder import BEST_NAME  # lazy: the run folder is built on this module

        raise CheckpointError(f"{path} is a folder: give a checkpoint file such as {path / BEST_NAME}")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found")
    if is_safetensors(path):
        model, optimizer_arrays, meta = _read_safetensors(path)
    elif is_checkpoint_file(path):
        model, optimizer_arrays, meta = _read_npz(path)
    else:
        raise CheckpointError(f"{path} is not a minicnn checkpoint (neither a safetensors file nor an .npz archive)")
    return Checkpoint(model, {"config": meta.get("optimizer"), "arrays": optimizer_arrays}, meta)


def _read_safetensors(path: Path) -> tuple[dict, dict, dict]:
    """(model arrays, optimizer arrays, meta) of a safetensors checkpoint."""
    try:
        arrays, header = read(path)
    except WeightsFileError as error:
        raise CheckpointError(f"checkpoint {error}; use another checkpoint") from None
    found = header.get("format")
    if found == STATE_FORMAT:
        raise CheckpointError(f"{path} holds a model's weights (written by mc.save), not a training checkpoint: load "
                              "them in Python with model.load_state_dict(mc.load(path))")
    if found != FORMAT:
        raise CheckpointError(f"{path} has format {found!r}; this minicnn reads checkpoints of format {FORMAT!r} "
                              f"(safetensors) and {NPZ_FORMAT!r} (.npz)")
    meta = _parse_meta(path, header.get("checkpoint", "").encode("utf-8"))
    model = {name: value for name, value in arrays.items() if not name.startswith(OPTIMIZER_PREFIX)}
    optimizer = {name[len(OPTIMIZER_PREFIX):]: value for name, value in arrays.items() if name.startswith(OPTIMIZER_PREFIX)}
    return model, optimizer, meta


def _read_npz(path: Path) -> tuple[dict, dict, dict]:
    """(model arrays, optimizer arrays, meta) of an earlier version's .npz checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({error}); use another checkpoint") from None
    if "__meta__" not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a minicnn checkpoint (no __meta__ entry)")
    strays = [name for name, value in arrays.items() if not isinstance(value, np.ndarray)]
    if strays:  # np.load hands back entries that are not .npy files as raw bytes
        raise CheckpointError(f"checkpoint {path} has entries that are not arrays: {', '.join(strays)}")
    for name, value in arrays.items():
        if name != "__meta__" and value.dtype.kind not in NUMERIC_KINDS:
            raise CheckpointError(f"checkpoint {path}: entry '{name}' holds {value.dtype} values, not numbers; "
                                  "the file was not written by minicnn or was altered: use another checkpoint")
    meta = _parse_meta(path, arrays.pop("__meta__").tobytes())
    if meta.get("format") != NPZ_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {meta.get('format')!r}; this minicnn reads .npz checkpoints "
                              f"of format {NPZ_FORMAT!r} and safetensors of {FORMAT!r}")
    model = {n[len("model/"):]: a for n, a in arrays.items() if n.startswith("model/")}
    optimizer = {n[len("optimizer/"):]: a for n, a in arrays.items() if n.startswith("optimizer/")}
    return model, optimizer, meta


def _parse_meta(path: Path, raw: bytes) -> dict:
    """The checkpoint's JSON metadata, which must be an object."""
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata: {error}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has metadata that is a JSON {type(meta).__name__}, not an object")
    return meta
