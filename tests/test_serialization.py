"""mc.save and mc.load in safetensors: round trips of what state dicts hold, files that follow the
format as its specification reads (checked here by a reader written from it, not by the library),
the header's metadata, PyTorch reading minicnn's files and minicnn reading PyTorch's, and an error
naming the file for anything that is not a good safetensors file."""

import errno
import importlib.util
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
import minicnn.train.files as files
from minicnn import nn
from minicnn.backend import gpu_available
from minicnn.serialization import STATE_FORMAT, WeightsFileError
from minicnn.train import WriteError, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SPEC_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4", "I64": "<i8",
               "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}


def parse(path: Path) -> tuple[dict, dict]:
    """(header, arrays) of a safetensors file, read as the format's specification says: an 8-byte
    little-endian header length, the JSON header, then each array's bytes at its data_offsets."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    data = raw[8 + length:]
    arrays = {}
    for name, entry in header.items():
        if name != "__metadata__":
            begin, end = entry["data_offsets"]
            arrays[name] = np.frombuffer(data[begin:end], SPEC_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return header, arrays


def forge(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    """A file with `header` (JSON-encoded unless bytes) and `data`, declaring `length` when given."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8")
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def small_model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def trained(model, shape, seed=0):
    """`model` after one training-mode forward (running statistics and num_batches_tracked move off
    their initial values), in eval mode."""
    mc.manual_seed(seed)
    with mc.no_grad():
        model(mc.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32)))
    return model.eval()


def outputs(model, x):
    with mc.no_grad():
        return model.eval()(mc.tensor(x)).numpy()


# -- round trips -------------------------------------------------------------------------------


def test_a_model_round_trips_with_names_order_dtypes_and_values(tmp_path):
    model = trained(small_model(), (4, 1, 6, 6))
    path = mc.save(model, tmp_path / "model.safetensors")
    assert path == tmp_path / "model.safetensors"
    state, saved = mc.load(path), model.state_dict()
    assert list(state) == list(saved)  # state_dict order, although the file stores names sorted
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"] == 1
    for name, value in saved.items():
        assert state[name].dtype == value.dtype and np.array_equal(state[name], value), name
    other = small_model()
    other.load_state_dict(mc.load(str(path)))
    x = np.random.default_rng(1).standard_normal((2, 1, 6, 6)).astype(np.float32)
    assert np.array_equal(outputs(other, x), outputs(model, x))


def test_arrays_of_every_kind_round_trip_and_follow_the_format(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    arrays = {
        "float32": np.linspace(-1, 1, 7, dtype=np.float32), "float64": base, "float16": np.float16([0.5, -2]),
        "int64 scalar": np.array(2**40, dtype=np.int64), "int32": np.arange(-3, 3, dtype=np.int32),
        "uint8": np.arange(250, 256, dtype=np.uint8), "bool": np.array([True, False, True]),
        "empty": np.zeros((0, 3), np.float32), "strided": base[:, ::2], "transposed": base.T,
        "big-endian": np.arange(5, dtype=">f4"), "tensor": mc.tensor(np.ones((2, 2), np.float32), requires_grad=True),
    }
    path = mc.save(arrays, tmp_path / "arrays.safetensors")
    expected = {name: value.numpy() if isinstance(value, mc.Tensor) else value for name, value in arrays.items()}
    loaded = mc.load(path)
    header, raw = parse(path)
    assert list(loaded) == list(arrays)
    for name, value in expected.items():
        for got in (loaded[name], raw[name]):
            assert got.shape == value.shape and got.dtype == value.dtype.newbyteorder("=") and np.array_equal(got, value), name
        assert header[name]["shape"] == list(value.shape), name
    assert header["big-endian"]["dtype"] == "F32" and header["int64 scalar"]["dtype"] == "I64"
    assert loaded["strided"].flags.writeable and loaded["strided"].flags.c_contiguous


def test_the_header_names_the_format_the_version_and_the_order(tmp_path):
    path = mc.save({"b": np.zeros(2), "a": np.ones(1)}, tmp_path / "w.safetensors")
    metadata = parse(path)[0]["__metadata__"]
    assert re.fullmatch("[0-9a-f]{64}", metadata.pop("sha256"))
    assert metadata == {"format": STATE_FORMAT, "minicnn": mc.__version__, "names": '["b", "a"]'}
    assert list(mc.load(path)) == ["b", "a"]


def test_a_flipped_byte_inside_the_arrays_is_caught_by_the_checksum(tmp_path):
    path = mc.save({"w": np.arange(4, dtype=np.float32), "n": np.arange(3)}, tmp_path / "w.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # the last array's last bytes: any value is still a valid number
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError, match=rf"{re.escape(str(path))} is corrupt: its arrays do not match the checksum"):
        mc.load(path)


def test_a_file_of_another_tool_loads_in_its_own_order(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {"z": np.arange(3, dtype=np.int16), "a": np.eye(2, dtype=np.float32)}
    safetensors_numpy.save_file(arrays, str(tmp_path / "theirs.safetensors"))
    loaded = mc.load(tmp_path / "theirs.safetensors")
    assert sorted(loaded) == ["a", "z"] and all(np.array_equal(loaded[n], arrays[n]) for n in arrays)


def test_an_empty_state_round_trips(tmp_path):
    assert mc.load(mc.save({}, tmp_path / "nothing.safetensors")) == {}


def test_a_checkpoint_gives_its_model_arrays_and_so_does_an_earlier_versions_npz(tmp_path):
    model = trained(small_model(), (4, 1, 6, 6))
    state = model.state_dict()
    path = save_checkpoint(tmp_path / "best.safetensors", state, {"config": {"lr": 0.1}, "arrays": {"0.momentum": np.ones(3)}},
                           {"epoch": 1})
    old = tmp_path / "best.npz"
    np.savez(old, **{f"model/{n}": v for n, v in state.items()}, **{"optimizer/0.momentum": np.ones(3)},
             __meta__=np.frombuffer(json.dumps({"format": "minicnn-checkpoint-1", "epoch": 1}).encode(), np.uint8))
    for loaded in (mc.load(path), mc.load(old)):
        assert list(loaded) == list(state) and all(np.array_equal(loaded[n], v) for n, v in state.items())


# -- what cannot be saved ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.array([1 + 2j]), np.array(["text"]), np.array([object()], dtype=object)],
                         ids=["complex", "strings", "objects"])
def test_an_array_safetensors_cannot_hold_is_refused_by_name_and_nothing_is_written(tmp_path, value):
    path = mc.save({"w": np.arange(3.0)}, tmp_path / "w.safetensors")
    before = path.read_bytes()
    with pytest.raises(ValueError, match=rf"'odd' holds {re.escape(str(value.dtype))} values, which safetensors cannot store"):
        mc.save({"w": np.zeros(3), "odd": value}, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_save_takes_a_module_or_a_dict(tmp_path):
    with pytest.raises(TypeError, match="a minicnn Module or a dict of arrays.*not list"):
        mc.save([np.zeros(2)], tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match="names must be strings, got 0"):
        mc.save({0: np.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        mc.save({}, tmp_path)


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = mc.save({"w": np.arange(4.0)}, tmp_path / "w.safetensors")
    before = path.read_bytes()

    def half_then_full(file):
        file.write(b"\x10\x00\x00")
        raise OSError(errno.ENOSPC, "No space left on device")

    write = files.write_atomically
    monkeypatch.setattr(files, "write_atomically", lambda writes: write({p: half_then_full for p in writes}))
    with pytest.raises(WriteError, match=rf"could not write {re.escape(str(path))} \(No space left on device\)"):
        mc.save({"w": np.zeros(4)}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


# -- files that are not good safetensors files -------------------------------------------------


def test_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(tmp_path / 'gone.safetensors'))} not found"):
        mc.load(tmp_path / "gone.safetensors")
    with pytest.raises(ValueError, match="is a folder: give a checkpoint file"):
        mc.load(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\x05\x00", b"not safetensors at all", b"\x93NUMPY\x01\x00v\x00{'descr'",
                                     b"PK\x03\x04 a zip archive", json.dumps({"w": [1, 2]}).encode()],
                         ids=["empty", "short", "text", "npy", "zip", "json"])
def test_a_file_that_is_not_safetensors(tmp_path, content):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=rf"{re.escape(str(path))} is not a safetensors file"):
        mc.load(path)


@pytest.fixture
def good(tmp_path) -> Path:
    return mc.save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(4, dtype=np.int64)},
                   tmp_path / "good.safetensors")


@pytest.mark.parametrize("keep", [9, 40, -17, -1], ids=["header-start", "mid-header", "mid-data", "last-byte"])
def test_a_truncated_file(good, keep):
    good.write_bytes(good.read_bytes()[:keep])
    with pytest.raises(WeightsFileError, match=rf"{re.escape(str(good))} is corrupt or truncated"):
        mc.load(good)


ARRAY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, data, length", [
    ({"w": ARRAY}, b"\x00" * 8, 2**62),                                                # a header larger than any file
    ({"w": ARRAY}, b"\x00" * 8, 10**8),                                               # within the limit, past the end
    ({"w": {**ARRAY, "data_offsets": [0, 2**40]}}, b"\x00" * 8, None),                 # data past the end
    ({"w": {**ARRAY, "data_offsets": [8, 0]}}, b"\x00" * 8, None),                     # a backwards range
    ({"w": ARRAY, "v": ARRAY}, b"\x00" * 8, None),                                    # two arrays on the same bytes
    ({"w": ARRAY, "v": {**ARRAY, "data_offsets": [12, 20]}}, b"\x00" * 20, None),     # a gap between two arrays
    ({"w": {**ARRAY, "shape": [3]}}, b"\x00" * 8, None),                               # shape and byte count disagree
    ({"w": {**ARRAY, "shape": [-1]}}, b"\x00" * 8, None),                              # a negative dimension
    ({"w": {**ARRAY, "dtype": "F99"}}, b"\x00" * 8, None),                             # no such dtype
    ({"w": ARRAY, "__metadata__": {"format": 1}}, b"\x00" * 8, None),                  # metadata values are strings
    (b"{not json at all}", b"", None),
    (b"[1, 2, 3]", b"", None),
], ids=["huge-header", "header-past-end", "data-past-end", "backwards", "overlapping", "gap", "wrong-size", "negative",
        "unknown-dtype", "metadata-not-strings", "not-json", "not-an-object"])
def test_a_hostile_header_is_refused_naming_the_file(tmp_path, header, data, length):
    path = forge(tmp_path / "hostile.safetensors", header, data, length)
    with pytest.raises(WeightsFileError, match=re.escape(str(path))):
        mc.load(path)


def test_a_dtype_numpy_cannot_hold_is_named(tmp_path):
    path = forge(tmp_path / "bf16.safetensors", {"ok": {**ARRAY}, "half": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12]}},
                 b"\x00" * 12)
    with pytest.raises(WeightsFileError, match=r"arrays of a type NumPy cannot hold: 'half' \(BF16\).*float32"):
        mc.load(path)


def test_a_forged_file_that_is_valid_loads(tmp_path):
    """The reader is no stricter than the format: a hand-made file with the spec's layout loads."""
    data = np.float32([1.5, -2]).tobytes() + np.int64([7]).tobytes()
    path = forge(tmp_path / "hand.safetensors", {"w": ARRAY, "n": {"dtype": "I64", "shape": [], "data_offsets": [8, 16]}}, data)
    loaded = mc.load(path)
    assert np.array_equal(loaded["w"], [1.5, -2]) and loaded["n"].shape == () and loaded["n"] == 7


# -- PyTorch ------------------------------------------------------------------------------------


def torch_twins():
    """benchmarks/twins.py (a file of the benchmarks, not a package): PyTorch twins of minicnn's models."""
    spec = importlib.util.spec_from_file_location("twins", ROOT / "benchmarks" / "twins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_logits(actual, expected):
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


def test_resnet20_saved_by_minicnn_loads_into_its_pytorch_twin(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    model = trained(mc.create_model("resnet20"), (8, 3, 32, 32))
    twin = torch_twins().torch_twin("resnet20")
    twin.load_state_dict(safetensors_torch.load_file(str(mc.save(model, tmp_path / "resnet20.safetensors"))))
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = twin.eval()(torch.from_numpy(x)).numpy()
    assert_same_logits(outputs(model, x), expected)


def test_torchvisions_resnet18_saved_by_pytorch_loads_into_minicnn(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        reference.train()(torch.from_numpy(x))  # running statistics move off 0 and 1
        expected = reference.eval()(torch.from_numpy(x)).numpy()
    safetensors_torch.save_file(reference.state_dict(), str(tmp_path / "resnet18.safetensors"))
    model = mc.create_model("resnet18")
    model.load_state_dict(mc.load(tmp_path / "resnet18.safetensors"))
    assert_same_logits(outputs(model, x), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")
def test_a_model_on_the_gpu_is_saved_from_the_host_copy(tmp_path):
    model = trained(small_model(), (4, 1, 6, 6))
    expected = model.state_dict()
    model.to("cuda")
    loaded = mc.load(mc.save(model, tmp_path / "gpu.safetensors"))
    assert all(np.array_equal(loaded[name], value) for name, value in expected.items())
