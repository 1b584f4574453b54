"""Checkpoints: the round trip, the JSON sidecar, atomic writes, and a CheckpointError for every file
that is not a good checkpoint, without ever unpickling what it holds."""

import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, optim
from minicnn.autograd import Tensor
from minicnn.functional import cross_entropy
from minicnn.train import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from minicnn.train.checkpoint import FORMAT, first_non_finite


def small_model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def trained_pair(seed=0):
    """A model and its SGD optimizer after one step, so the optimizer holds momentum arrays."""
    mc.manual_seed(seed)
    model = small_model()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    loss = cross_entropy(model(Tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))), np.array([0, 1, 2, 0]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return model, optimizer


META = {"epoch": 3, "best_accuracy": 0.5, "classes": ["a", "b", "c"], "rng_state": {"state": {"state": 2**100}},
        "metrics": {"epoch": 3, "test_accuracy": 0.5}, "nested": {"list": [1, 2.5, None, "x"]}}


@pytest.fixture
def checkpoint(tmp_path):
    """A good checkpoint file of a trained model and optimizer."""
    model, optimizer = trained_pair()
    return save_checkpoint(tmp_path / "good.npz", model.state_dict(), optimizer.state_dict(), META)


def test_round_trip_keeps_model_optimizer_and_meta(tmp_path):
    model, optimizer = trained_pair()
    path = save_checkpoint(tmp_path / "last.npz", model.state_dict(), optimizer.state_dict(), META)
    assert path == tmp_path / "last.npz"
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Checkpoint)
    saved = model.state_dict()
    assert list(loaded.model) == list(saved)
    for name, value in saved.items():
        assert loaded.model[name].dtype == value.dtype and np.array_equal(loaded.model[name], value), name
    saved_optimizer = optimizer.state_dict()
    assert loaded.optimizer["config"] == json.loads(json.dumps(saved_optimizer["config"]))
    assert saved_optimizer["arrays"] and set(loaded.optimizer["arrays"]) == set(saved_optimizer["arrays"])
    for name, value in saved_optimizer["arrays"].items():
        assert np.array_equal(loaded.optimizer["arrays"][name], value), name
    assert loaded.meta == {**META, "format": FORMAT, "optimizer": loaded.optimizer["config"]}


def test_a_loaded_checkpoint_continues_training_identically(tmp_path):
    model, optimizer = trained_pair(seed=0)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.npz", model.state_dict(), optimizer.state_dict(), META))
    other_model, other_optimizer = trained_pair(seed=1)
    other_model.load_state_dict(loaded.model)
    other_optimizer.load_state_dict(loaded.optimizer)
    x = Tensor(np.random.default_rng(5).standard_normal((4, 1, 6, 6)).astype(np.float32))
    for m, opt in ((model, optimizer), (other_model, other_optimizer)):
        loss = cross_entropy(m(x), np.array([2, 1, 0, 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, value in model.state_dict().items():
        assert np.array_equal(other_model.state_dict()[name], value), name


def test_model_only_checkpoint(tmp_path):
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.npz", {"w": np.arange(6).reshape(2, 3)}, None, {"epoch": 0}))
    assert np.array_equal(loaded.model["w"], np.arange(6).reshape(2, 3))
    assert loaded.optimizer == {"config": None, "arrays": {}}


def test_the_json_sidecar_equals_the_embedded_meta(checkpoint):
    sidecar = checkpoint.with_suffix(".json")
    assert sidecar.is_file()
    assert json.loads(sidecar.read_text(encoding="utf-8")) == load_checkpoint(checkpoint).meta


def test_the_npz_alone_is_a_complete_checkpoint(checkpoint):
    checkpoint.with_suffix(".json").unlink()
    assert load_checkpoint(checkpoint).meta["epoch"] == 3


def test_saving_leaves_no_temporary_file_and_replaces_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "last.npz", {"w": np.zeros(3)}, None, {"epoch": 1})
    save_checkpoint(tmp_path / "last.npz", {"w": np.ones(3)}, None, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.npz"]
    loaded = load_checkpoint(tmp_path / "last.npz")
    assert loaded.meta["epoch"] == 2 and np.array_equal(loaded.model["w"], np.ones(3))


def failing_savez(file, **arrays):
    """np.savez that has written half an archive when the disk fills up."""
    file.write(b"PK\x03\x04 half an archive")
    raise OSError(28, "No space left on device")


def test_a_failed_write_keeps_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.npz", {"w": np.arange(4.0)}, None, {"epoch": 1})
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"w": np.full(4, 7.0)}, None, {"epoch": 2})
    monkeypatch.undo()
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    loaded = load_checkpoint(path)
    assert loaded.meta["epoch"] == 1 and np.array_equal(loaded.model["w"], np.arange(4.0))


def test_a_full_disk_names_the_checkpoint_and_keeps_its_sidecar_too(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.npz", {"w": np.arange(4.0)}, None, {"epoch": 1})
    sidecar = path.with_suffix(".json").read_bytes()
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match=rf"could not write {re.escape(str(path))} \(No space left on device\); the disk is "
                                      "full: free some space. last.npz is left as it was"):
        save_checkpoint(path, {"w": np.full(4, 7.0)}, None, {"epoch": 2})
    assert path.with_suffix(".json").read_bytes() == sidecar  # written first, but renamed only after the .npz is written


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last.npz", {"w": np.arange(4.0)}, None, {"epoch": 1})
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "last.npz", {"w": np.arange(4.0)}, None, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.npz"]


# -- files that are not good checkpoints --------------------------------------------------------


def test_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.npz")


def test_a_folder_suggests_its_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder.*best.npz"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"", b"PK", b"garbage bytes, not a zip archive" * 10, b"\x93NUMPY\x01\x00"],
                         ids=["empty", "two-bytes", "garbage", "npy-header"])
def test_a_file_that_is_not_an_archive(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a minicnn checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [4, 100, 0.5, -30, -1], ids=["header", "100-bytes", "half", "no-directory", "last-byte"])
def test_a_truncated_file(checkpoint, keep):
    data = checkpoint.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    checkpoint.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="corrupt or truncated.*best.npz"):
        load_checkpoint(checkpoint)


def test_a_flipped_byte_inside_the_arrays_is_caught_by_the_crc(checkpoint):
    data = bytearray(checkpoint.read_bytes())
    with zipfile.ZipFile(checkpoint) as archive:
        info = archive.getinfo("model/0.weight.npy")
    name_length, extra_length = np.frombuffer(bytes(data[info.header_offset + 26:info.header_offset + 30]), "<u2")
    start = info.header_offset + 30 + int(name_length) + int(extra_length)  # where the stored .npy begins
    data[start + info.file_size - 4] ^= 0xFF  # a byte of the last weight
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(checkpoint)


def test_an_npz_without_meta_is_not_a_checkpoint(tmp_path):
    np.savez(tmp_path / "plain.npz", weight=np.zeros(3))
    with pytest.raises(CheckpointError, match="no __meta__"):
        load_checkpoint(tmp_path / "plain.npz")


def meta_bytes(meta) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def test_a_checkpoint_of_another_format(tmp_path):
    np.savez(tmp_path / "future.npz", **{"__meta__": meta_bytes({"format": "minicnn-checkpoint-99"}),
                                         "model/w": np.zeros(2)})
    with pytest.raises(CheckpointError, match="minicnn-checkpoint-99.*minicnn-checkpoint-1"):
        load_checkpoint(tmp_path / "future.npz")
    np.savez(tmp_path / "unversioned.npz", __meta__=meta_bytes({"epoch": 1}))
    with pytest.raises(CheckpointError, match="format None"):
        load_checkpoint(tmp_path / "unversioned.npz")


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{not json"], ids=["not-utf8", "not-json"])
def test_unreadable_metadata(tmp_path, raw):
    np.savez(tmp_path / "c.npz", __meta__=np.frombuffer(raw, dtype=np.uint8))
    with pytest.raises(CheckpointError, match="unreadable metadata"):
        load_checkpoint(tmp_path / "c.npz")


def test_metadata_that_is_not_a_json_object(tmp_path):
    np.savez(tmp_path / "c.npz", __meta__=meta_bytes([FORMAT]))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "c.npz")


def test_members_that_are_not_npy_files(tmp_path):
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as archive:
        archive.writestr("__meta__", json.dumps({"format": FORMAT}))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "c.npz")


class Payload:
    """Unpickling this creates the folder `marker`: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def npy_bytes(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["model/0.weight.npy", "optimizer/0.momentum_buffer.npy", "__meta__.npy"])
def test_an_object_array_is_refused_without_running_its_code(tmp_path, member):
    marker = tmp_path / "code-ran"
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        if member != "__meta__.npy":
            archive.writestr("__meta__.npy", npy_bytes(meta_bytes({"format": FORMAT, "epoch": 1})))
        archive.writestr(member, npy_bytes(evil, allow_pickle=True))
    with pytest.raises(CheckpointError, match="Object arrays cannot be loaded"):
        load_checkpoint(path)
    assert not marker.exists()
    with np.load(path, allow_pickle=True) as archive:  # the payload is live: unpickling it runs code
        archive[member[:-len(".npy")]]
    assert marker.is_dir()


def test_no_module_of_minicnn_unpickles():
    root = Path(mc.__file__).parent
    for path in root.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"import pickle|from pickle|allow_pickle=True|np\.load\((?![^)]*allow_pickle=False)", source), path


@pytest.mark.parametrize("dtype", ["<U3", "S2", "datetime64[s]", [("a", "<f4"), ("b", "<i4")]],
                         ids=["unicode", "bytes", "datetime", "structured"])
def test_an_entry_that_does_not_hold_numbers_is_refused_by_name(checkpoint, tmp_path, dtype):
    with np.load(checkpoint, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["model/1.weight"] = np.zeros(2, dtype=dtype)
    forged = tmp_path / "forged.npz"
    np.savez(forged, **arrays)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(forged))}: entry 'model/1.weight' holds .* values, not numbers"):
        load_checkpoint(forged)


def test_first_non_finite_names_the_first_float_array_holding_nan_or_inf():
    arrays = {"a": np.ones(3, np.float32), "count": np.array([2**40]), "b": np.array([1.0, np.inf]),
              "c": np.array([np.nan])}
    assert first_non_finite(arrays) == "b"
    assert first_non_finite({"a": np.ones(3), "mask": np.array([True])}) is None
    assert first_non_finite({"z": np.array([1 + 0j, complex(0, np.nan)])}) == "z"
