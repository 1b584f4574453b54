"""Checkpoints: one .npz of arrays (read with allow_pickle=False, so loading cannot run code) plus a
JSON sidecar for people and tools. Written atomically: a temporary file in the same folder, flushed
to disk, then renamed over the old one, so a run killed at any moment leaves the previous
checkpoint intact.

Inside the .npz: `model/<name>` for each entry of the model's state_dict, `optimizer/<name>` for the
optimizer's arrays, and `__meta__`, the JSON metadata (epoch, configuration, optimizer settings,
random-generator state, metrics) as UTF-8 bytes, so the .npz alone is a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "minicnn-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a minicnn checkpoint."""


@dataclass
class Checkpoint:
    model: dict          # name -> np.ndarray (a model state_dict)
    optimizer: dict      # {"config": JSON-able dict, "arrays": name -> np.ndarray}
    meta: dict           # epoch, config, rng state, metrics...


def _atomic_write(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_checkpoint(path, model_state: dict, optimizer_state: dict | None, meta: dict) -> Path:
    """Write `path` (.npz) and its sidecar (.json) atomically; returns the .npz path."""
    path = Path(path)
    meta = {"format": FORMAT, **meta, "optimizer": (optimizer_state or {}).get("config")}
    text = json.dumps(meta, indent=2, sort_keys=True)
    arrays = {f"model/{name}": np.asarray(value) for name, value in model_state.items()}
    for name, value in (optimizer_state or {}).get("arrays", {}).items():
        arrays[f"optimizer/{name}"] = np.asarray(value)
    arrays["__meta__"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _atomic_write(path, lambda file: np.savez(file, **arrays))
    _atomic_write(path.with_suffix(".json"), lambda file: file.write(text.encode("utf-8")))
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
