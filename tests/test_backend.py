"""Devices, array modules and seeding."""

import json
import subprocess
import sys
import types

import numpy as np
import pytest

import minicnn as mc
from minicnn import backend


@pytest.mark.parametrize(
    "spec, expected",
    [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda:0"), ("cuda:1", "cuda:1"), ("gpu", "cuda:0"), (None, "cpu")],
)
def test_device_parsing(spec, expected):
    assert str(mc.device(spec)) == expected


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cpu:1", ""])
def test_bad_device_names_are_explained(spec):
    with pytest.raises(mc.DeviceError, match="cpu"):
        mc.device(spec)


def test_devices_compare_by_value():
    assert mc.device("cuda") == mc.device("cuda:0")
    assert mc.device("cpu") != mc.device("cuda")
    assert mc.device(mc.device("cuda:2")) == mc.Device("cuda", 2)


def test_numpy_arrays_use_numpy():
    a = np.zeros(3)
    assert backend.get_array_module(a) is np
    assert backend.device_of(a) == backend.CPU
    assert backend.to_device(a, "cpu") is a
    assert backend.to_numpy(a) is a


def test_importing_minicnn_does_not_import_cupy():
    # A fresh interpreter: this test process may have imported other things.
    code = "import sys, minicnn, minicnn.functional; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


class FakeCudaRuntime:
    """Stands in for cupy.cuda.runtime: getDeviceCount returns `count`, or raises `error`."""

    def __init__(self, count=0, error=None):
        self.count, self.error = count, error

    def getDeviceCount(self):
        if self.error is not None:
            raise self.error
        return self.count


class CUDARuntimeError(RuntimeError):
    """Named like CuPy's, whose class name the reason must keep."""


def fake_cupy(monkeypatch, **runtime):
    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=FakeCudaRuntime(**runtime)))
    monkeypatch.setattr(backend, "cupy_module", lambda: cupy)


def test_the_reason_a_gpu_is_unusable_keeps_the_cuda_error(monkeypatch):
    error = CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")
    fake_cupy(monkeypatch, error=error)
    reason = backend.gpu_unavailable_reason("cuda:0")
    assert reason == ("no usable CUDA GPU for device 'cuda:0': CUDARuntimeError: cudaErrorInsufficientDriver: "
                      "CUDA driver version is insufficient for CUDA runtime version; use device='cpu' (--device cpu)")
    assert not mc.gpu_available("cuda:0")
    with pytest.raises(mc.DeviceError) as raised:
        backend.check_cuda_device(mc.device("cuda:0"))
    assert raised.value.cause == ("CUDARuntimeError: cudaErrorInsufficientDriver: CUDA driver version is insufficient "
                                  "for CUDA runtime version")


def test_the_reason_names_a_gpu_number_the_machine_lacks(monkeypatch):
    fake_cupy(monkeypatch, count=1)
    assert backend.gpu_unavailable_reason("cuda:3") == "device 'cuda:3' does not exist: this machine has 1 GPU(s)"
    assert backend.gpu_unavailable_reason("cuda:0") is None and mc.gpu_available("cuda:0")


def test_the_reason_says_when_cupy_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    reason = backend.gpu_unavailable_reason()
    assert reason.startswith("a CUDA device was requested but CuPy is not installed: install it with "
                             '`pip install "minicnn-framework[cuda]"` (from a source checkout: `pip install -e ".[cuda]"`)')
    assert reason.endswith("or use device='cpu' (--device cpu)")
    assert not backend.gpu_available()
    with pytest.raises(mc.DeviceError) as raised:
        backend.check_cuda_device(mc.device("cuda"))
    assert raised.value.cause == "CuPy is not installed"


def test_scatter_add_adds_repeated_indices():
    a = np.zeros(4)
    backend.scatter_add(a, np.array([1, 1, 3]), np.array([1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(a, [0.0, 3.0, 0.0, 5.0])


def test_manual_seed_makes_draws_repeatable():
    mc.manual_seed(123)
    first = backend.random_generator("cpu").random(5)
    mc.manual_seed(123)
    second = backend.random_generator("cpu").random(5)
    mc.manual_seed(124)
    third = backend.random_generator("cpu").random(5)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, third)


def test_each_device_owns_one_generator_and_hands_it_out(monkeypatch):
    monkeypatch.setattr(backend, "_generators", {})
    mc.manual_seed(11)
    cpu = mc.device("cpu").generator
    assert backend.Device("cpu").generator is cpu is backend.random_generator("cpu")
    gpu = mc.device("cuda:1").generator
    assert isinstance(gpu, backend.CounterStream) and gpu.target == mc.device("cuda:1") and gpu.state["seed"] == 11
    assert mc.device("cuda:1").generator is gpu is not mc.device("cuda:0").generator
    assert set(backend.get_rng_state()) == {"cpu", "cuda:0", "cuda:1"}


@pytest.fixture
def fake_gpu_stream(monkeypatch):
    """GPU random streams without a GPU: each draw's uniforms come from NumPy, keyed as on the GPU."""
    keys = []

    def uniform(target):
        return lambda key, shape, dtype: keys.append(key) or np.random.default_rng(key).random(shape, dtype)

    monkeypatch.setattr(backend, "_philox_uniform", uniform)
    monkeypatch.setattr(backend, "_generators", {})
    monkeypatch.setattr(backend, "_seed", None)
    return keys


def test_rng_state_holds_every_device_as_json_and_a_resume_replays_the_draws_that_followed(fake_gpu_stream):
    mc.manual_seed(5)
    cpu, gpu = backend.random_generator("cpu"), backend.random_generator("cuda")
    cpu.random(3), gpu.random((2, 3), "float32")
    state = json.loads(json.dumps(backend.get_rng_state()))
    assert set(state) == {"cpu", "cuda:0"} and state["cuda:0"] == {"seed": 5, "draws": 1}
    after = [backend.random_generator(d).random((4,), "float32") for d in ("cpu", "cuda", "cuda")]
    mc.manual_seed(5)  # a resumed run seeds again before restoring
    backend.set_rng_state(state)
    again = [backend.random_generator(d).random((4,), "float32") for d in ("cpu", "cuda", "cuda")]
    for first, second in zip(after, again):
        np.testing.assert_array_equal(first, second)
    assert backend.random_generator("cuda").state == {"seed": 5, "draws": 3}


def test_each_gpu_draw_is_keyed_by_seed_and_draw_number_alone(fake_gpu_stream):
    streams = [backend.CounterStream(mc.device("cuda"), seed) for seed in (1, 1, 2)]
    for stream in streams:
        stream.random(2), stream.random(2)
    jumped = backend.CounterStream(mc.device("cuda"), 1, draws=1)
    jumped.random(2)
    first, same, other, skipped = fake_gpu_stream[0:2], fake_gpu_stream[2:4], fake_gpu_stream[4:6], fake_gpu_stream[6]
    assert first == same and first[0] != first[1] and not set(first) & set(other)
    assert skipped == first[1]


def test_the_cpu_only_rng_state_of_older_checkpoints_still_restores(fake_gpu_stream):
    mc.manual_seed(9)
    old_format = backend.random_generator("cpu").bit_generator.state
    expected = backend.random_generator("cpu").random(4)
    mc.manual_seed(0)
    gpu_before = backend.random_generator("cuda").state
    backend.set_rng_state(old_format)
    np.testing.assert_array_equal(backend.random_generator("cpu").random(4), expected)
    assert backend.random_generator("cuda").state == gpu_before  # left as seeded
