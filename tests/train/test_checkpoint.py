"""Checkpoints: the round trip, the layout PyTorch reads, the JSON sidecar, atomic writes, an earlier
version's .npz checkpoints, and a CheckpointError for every file that is not a good checkpoint,
without ever unpickling what it holds."""

import errno
import importlib.util
import io
import json
import os
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn, optim
from minicnn.autograd import Tensor
from minicnn.functional import cross_entropy
import minicnn.train.files as files
from minicnn.train import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from minicnn.train.checkpoint import FORMAT, first_non_finite

ROOT = Path(__file__).resolve().parents[2]


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


def meta_bytes(meta) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def save_old_npz(path: Path, model_state: dict, optimizer_state: dict | None, meta: dict) -> Path:
    """A checkpoint as minicnn wrote them before safetensors: one .npz of `model/<name>`,
    `optimizer/<name>` and `__meta__` (the JSON metadata as UTF-8 bytes), format minicnn-checkpoint-1."""
    meta = {"format": "minicnn-checkpoint-1", **meta, "optimizer": (optimizer_state or {}).get("config")}
    arrays = {f"model/{name}": np.asarray(value) for name, value in model_state.items()}
    arrays.update({f"optimizer/{name}": np.asarray(value) for name, value in (optimizer_state or {}).get("arrays", {}).items()})
    np.savez(path, **arrays, __meta__=meta_bytes(meta))
    return path


@pytest.fixture
def checkpoint(tmp_path):
    """A good checkpoint file of a trained model and optimizer."""
    model, optimizer = trained_pair()
    return save_checkpoint(tmp_path / "best.safetensors", model.state_dict(), optimizer.state_dict(), META)


@pytest.fixture
def old_checkpoint(tmp_path):
    """A good .npz checkpoint of an earlier minicnn, of a trained model and optimizer."""
    model, optimizer = trained_pair()
    return save_old_npz(tmp_path / "best.npz", model.state_dict(), optimizer.state_dict(), META)


def test_round_trip_keeps_model_optimizer_and_meta(tmp_path):
    model, optimizer = trained_pair()
    path = save_checkpoint(tmp_path / "last.safetensors", model.state_dict(), optimizer.state_dict(), META)
    assert path == tmp_path / "last.safetensors"
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
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), optimizer.state_dict(), META))
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
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", {"w": np.arange(6).reshape(2, 3)}, None, {"epoch": 0}))
    assert np.array_equal(loaded.model["w"], np.arange(6).reshape(2, 3))
    assert loaded.optimizer == {"config": None, "arrays": {}}


def test_the_json_sidecar_equals_the_embedded_meta(checkpoint):
    sidecar = checkpoint.with_suffix(".json")
    assert sidecar.is_file()
    assert json.loads(sidecar.read_text(encoding="utf-8")) == load_checkpoint(checkpoint).meta


def test_the_safetensors_file_alone_is_a_complete_checkpoint(checkpoint):
    checkpoint.with_suffix(".json").unlink()
    assert load_checkpoint(checkpoint).meta["epoch"] == 3


def read_header(path: Path) -> dict:
    """The JSON header of a safetensors file, read as the format's specification says."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length])


def test_the_model_under_its_own_names_the_optimizer_under_a_prefix_the_meta_in_the_header(checkpoint):
    header = read_header(checkpoint)
    metadata = header.pop("__metadata__")
    model, optimizer = trained_pair()
    expected = list(model.state_dict()) + [f"optimizer/{name}" for name in optimizer.state_dict()["arrays"]]
    assert sorted(header) == sorted(expected)
    assert metadata["format"] == FORMAT and metadata["minicnn"] == mc.__version__
    assert json.loads(metadata["checkpoint"]) == load_checkpoint(checkpoint).meta


def test_the_format_is_read_from_the_content_not_the_name(checkpoint, old_checkpoint, tmp_path):
    for source, name in ((checkpoint, "weights.npz"), (old_checkpoint, "weights.safetensors"), (checkpoint, "weights")):
        renamed = tmp_path / name
        renamed.write_bytes(source.read_bytes())
        assert load_checkpoint(renamed).meta["epoch"] == 3, name


def test_saving_leaves_no_temporary_file_and_replaces_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "last.safetensors", {"w": np.zeros(3)}, None, {"epoch": 1})
    save_checkpoint(tmp_path / "last.safetensors", {"w": np.ones(3)}, None, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]
    loaded = load_checkpoint(tmp_path / "last.safetensors")
    assert loaded.meta["epoch"] == 2 and np.array_equal(loaded.model["w"], np.ones(3))


@pytest.fixture
def full_disk(monkeypatch):
    """Once called, the disk fills up halfway through writing the next checkpoint (not its sidecar)."""
    def half_then_full(file):
        file.write(b"\xd0\x07\x00\x00\x00\x00\x00\x00{half a header")
        raise OSError(errno.ENOSPC, "No space left on device")

    def fill():
        write = files.write_atomically
        monkeypatch.setattr("minicnn.train.checkpoint.write_atomically", lambda writes: write(
            {path: half_then_full if path.suffix == ".safetensors" else w for path, w in writes.items()}))

    return fill


def test_a_failed_write_keeps_the_previous_checkpoint_intact(tmp_path, monkeypatch, full_disk):
    path = save_checkpoint(tmp_path / "last.safetensors", {"w": np.arange(4.0)}, None, {"epoch": 1})
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()
    full_disk()
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"w": np.full(4, 7.0)}, None, {"epoch": 2})
    monkeypatch.undo()
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    loaded = load_checkpoint(path)
    assert loaded.meta["epoch"] == 1 and np.array_equal(loaded.model["w"], np.arange(4.0))


def test_a_full_disk_names_the_checkpoint_and_keeps_its_sidecar_too(tmp_path, full_disk):
    path = save_checkpoint(tmp_path / "last.safetensors", {"w": np.arange(4.0)}, None, {"epoch": 1})
    sidecar = path.with_suffix(".json").read_bytes()
    full_disk()
    with pytest.raises(OSError, match=rf"could not write {re.escape(str(path))} \(No space left on device\); the disk is "
                                      "full: free some space. last.safetensors is left as it was"):
        save_checkpoint(path, {"w": np.full(4, 7.0)}, None, {"epoch": 2})
    assert path.with_suffix(".json").read_bytes() == sidecar  # written first, but renamed only after the checkpoint is written


def test_a_failed_write_leaves_no_temporary_file(tmp_path, full_disk):
    save_checkpoint(tmp_path / "last.safetensors", {"w": np.arange(4.0)}, None, {"epoch": 1})
    full_disk()
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "last.safetensors", {"w": np.arange(4.0)}, None, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]


def test_a_model_name_that_would_pass_for_the_optimizers_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'optimizer/x' starts with 'optimizer/'"):
        save_checkpoint(tmp_path / "c.safetensors", {"optimizer/x": np.zeros(1)}, None, {"epoch": 1})
    assert list(tmp_path.iterdir()) == []


# -- PyTorch -------------------------------------------------------------------------------------


def test_resnet20_checkpoint_model_tensors_load_into_its_pytorch_twin(tmp_path):
    """As the module's docstring tells a PyTorch user: load_file, leave out the optimizer's arrays."""
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    spec = importlib.util.spec_from_file_location("twins", ROOT / "benchmarks" / "twins.py")
    twins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(twins)
    mc.manual_seed(0)
    model = mc.create_model("resnet20")
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    loss = cross_entropy(model(Tensor(x)), np.array([0, 1, 2, 3]))  # a step: batch-norm statistics and weights move
    loss.backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "last.safetensors", model.state_dict(), optimizer.state_dict(), META)
    tensors = safetensors_torch.load_file(str(path))
    twin = twins.torch_twin("resnet20")
    twin.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optimizer/")})  # strict
    model.eval()
    with mc.no_grad():
        actual = model(Tensor(x)).numpy()
    with torch.no_grad():
        expected = twin.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


# -- an earlier version's .npz -------------------------------------------------------------------


def test_an_earlier_versions_npz_checkpoint_loads_whole(old_checkpoint):
    loaded = load_checkpoint(old_checkpoint)
    model, optimizer = trained_pair()
    assert list(loaded.model) == list(model.state_dict())
    for name, value in model.state_dict().items():
        assert loaded.model[name].dtype == value.dtype and np.array_equal(loaded.model[name], value), name
    for name, value in optimizer.state_dict()["arrays"].items():
        assert np.array_equal(loaded.optimizer["arrays"][name], value), name
    assert loaded.optimizer["config"] == json.loads(json.dumps(optimizer.state_dict()["config"]))
    assert loaded.meta == {**META, "format": "minicnn-checkpoint-1", "optimizer": loaded.optimizer["config"]}


# -- files that are not good checkpoints --------------------------------------------------------


def test_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.npz")


def test_a_folder_suggests_its_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder.*best.safetensors"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"", b"PK", b"garbage bytes, not a zip archive" * 10, b"\x93NUMPY\x01\x00"],
                         ids=["empty", "two-bytes", "garbage", "npy-header"])
@pytest.mark.parametrize("name", ["bad.safetensors", "bad.npz"])
def test_a_file_that_is_not_a_checkpoint(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a minicnn checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [12, 100, 0.5, -30, -1], ids=["header-start", "100-bytes", "half", "last-array", "last-byte"])
def test_a_truncated_file(checkpoint, keep):
    data = checkpoint.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    checkpoint.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"best\.safetensors is corrupt or truncated.*use another checkpoint"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("keep", [4, 100, 0.5, -30, -1], ids=["header", "100-bytes", "half", "no-directory", "last-byte"])
def test_a_truncated_npz_file(old_checkpoint, keep):
    data = old_checkpoint.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    old_checkpoint.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"best\.npz is corrupt or truncated.*use another checkpoint"):
        load_checkpoint(old_checkpoint)


def test_a_flipped_byte_inside_the_arrays_is_caught_by_the_checksum(checkpoint):
    data = bytearray(checkpoint.read_bytes())
    data[-5] ^= 0xFF  # a byte of the last array stored
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="best.safetensors is corrupt: its arrays do not match the checksum"):
        load_checkpoint(checkpoint)


def test_weights_saved_with_mc_save_are_not_a_training_checkpoint(tmp_path):
    path = mc.save(small_model(), tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"holds a model's weights \(written by mc.save\), not a training checkpoint.*mc.load"):
        load_checkpoint(path)
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safetensors_numpy.save_file({"w": np.zeros(1)}, str(tmp_path / "theirs.safetensors"))
    with pytest.raises(CheckpointError, match=rf"has format None; this minicnn reads checkpoints of format '{FORMAT}'"):
        load_checkpoint(tmp_path / "theirs.safetensors")


def test_a_flipped_byte_inside_an_npz_is_caught_by_the_crc(old_checkpoint):
    checkpoint = old_checkpoint
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
def test_an_entry_that_does_not_hold_numbers_is_refused_by_name(old_checkpoint, tmp_path, dtype):
    with np.load(old_checkpoint, allow_pickle=False) as archive:
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
