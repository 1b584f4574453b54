"""Checkpoints: one .npz of arrays (read with allow_pickle=False, so loading cannot run code) plus a
JSON sidecar for people and tools. Written atomically (minicnn.train.files): both go to temporary
files, flushed to disk, then the sidecar and last the .npz are renamed over the old ones, so a run
killed at any moment leaves the previous .npz intact, and a sidecar can be ahead of its .npz only
until that epoch is written again (the .npz is the checkpoint).

Inside the .npz: `model/<name>` for each entry of the model's state_dict, `optimizer/<name>` for the
optimizer's arrays, and `__meta__`, the JSON metadata (epoch, configuration, optimizer settings,
random-generator state, metrics) as UTF-8 bytes, so the .npz alone is a complete checkpoint.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minicnn.backend import get_array_module
from minicnn.train.files import write_atomically

FORMAT = "minicnn-checkpoint-1"
NUMERIC_KINDS = "biufc"  # bool, signed and unsigned integers, floats, complex: what a tensor can hold


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
    """Write `path` (.npz) and its sidecar (.json) atomically, the .npz last; returns the .npz path.
    Raises WriteError (an OSError) naming the file when the disk is full, leaving the old pair."""
    path = Path(path)
    meta = {"format": FORMAT, **meta, "optimizer": (optimizer_state or {}).get("config")}
    text = json.dumps(meta, indent=2, sort_keys=True)
    arrays = {f"model/{name}": np.asarray(value) for name, value in model_state.items()}
    for name, value in (optimizer_state or {}).get("arrays", {}).items():
        arrays[f"optimizer/{name}"] = np.asarray(value)
    arrays["__meta__"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    write_atomically({path.with_suffix(".json"): lambda file: file.write(text.encode("utf-8")),
                      path: lambda file: np.savez(file, **arrays)})
    return path


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`, with a clear error for anything else."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder: give a checkpoint file such as {path / 'best.npz'}")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found")
    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise CheckpointError(f"{path} is not a minicnn checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({error}); use another checkpoint, e.g. best.npz") from None
    if "__meta__" not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a minicnn checkpoint (no __meta__ entry)")
    strays = [name for name, value in arrays.items() if not isinstance(value, np.ndarray)]
    if strays:  # np.load hands back entries that are not .npy files as raw bytes
        raise CheckpointError(f"checkpoint {path} has entries that are not arrays: {', '.join(strays)}")
    for name, value in arrays.items():
        if name != "__meta__" and value.dtype.kind not in NUMERIC_KINDS:
            raise CheckpointError(f"checkpoint {path}: entry '{name}' holds {value.dtype} values, not numbers; "
                                  "the file was not written by minicnn or was altered: use another checkpoint")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}; this minicnn reads {FORMAT!r}")
    model = {n[len("model/"):]: a for n, a in arrays.items() if n.startswith("model/")}
    optimizer = {"config": meta.get("optimizer"), "arrays": {n[len("optimizer/"):]: a for n, a in arrays.items() if n.startswith("optimizer/")}}
    return Checkpoint(model, optimizer, meta)
