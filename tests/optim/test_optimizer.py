"""The Optimizer base: parameter groups, zero_grad, skipping, the no-pickle state_dict, convergence,
and the same updates on every device (CPU always, GPU where present)."""

import json

import numpy as np
import pytest

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.nn import Linear, Parameter
from minicnn.optim import SGD, Adam, AdamW

OPTIMIZERS = [
    (SGD, {"lr": 0.05}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    (Adam, {"lr": 0.05, "weight_decay": 1e-3}),
    (AdamW, {"lr": 0.05}),
]
IDS = [f"{cls.__name__}-{kwargs}" for cls, kwargs in OPTIMIZERS]


def make_params(seed=0, device="cpu", dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Parameter(backend.to_device(rng.standard_normal(shape).astype(dtype), device)) for shape in [(4, 3), (3,)]]


def set_grads(params, rng):
    for p in params:
        xp = backend.get_array_module(p.data)
        noise = backend.to_device(rng.standard_normal(p.shape).astype(p.dtype), p.device)
        p.grad = Tensor(xp.asarray(0.3 * p.data + noise))


# -- construction -------------------------------------------------------------------------------

def test_an_empty_parameter_list_is_a_value_error():
    with pytest.raises(ValueError, match="SGD got an empty parameter list"):
        SGD([], lr=0.1)
    params = Linear(2, 2).parameters()
    list(params)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam(params)


def test_bad_parameter_lists_are_clear_errors():
    p = Parameter(np.zeros(2))
    with pytest.raises(TypeError, match="not a single tensor"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="parameter 1 of a group is a ndarray"):
        SGD([p, np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['momentun'\]"):
        SGD([{"params": [p], "momentun": 0.9}], lr=0.1)
    with pytest.raises(ValueError, match="needs a non-empty 'params'"):
        SGD([{"params": []}], lr=0.1)


def test_group_settings_override_the_defaults_and_are_checked():
    a, b = Parameter(np.ones(1)), Parameter(np.ones(1))
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = b.grad = Tensor(np.ones(1))
    optimizer.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.5])
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optimizer.add_param_group({"params": [Parameter(np.ones(1))], "lr": -1.0})


# -- stepping -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS, ids=IDS)
def test_parameters_without_a_gradient_are_skipped(cls, kwargs):
    still, moving = Parameter(np.ones(3)), Parameter(np.ones(3))
    moving.grad = Tensor(np.ones(3))
    optimizer = cls([still, moving], **kwargs)
    optimizer.step()
    np.testing.assert_array_equal(still.data, 1.0)
    assert still not in optimizer.state and not np.allclose(moving.data, 1.0)


def test_a_gradient_of_the_wrong_shape_is_named():
    p = Parameter(np.ones((2, 3)))
    p.grad = Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) has a gradient of shape \(3,\)"):
        SGD([p], lr=0.1).step()


def test_zero_grad_drops_or_zeroes_the_gradients():
    p = Parameter(np.ones(2))
    p.grad = Tensor(np.ones(2))
    grad = p.grad
    optimizer = SGD([p], lr=0.1)
    optimizer.zero_grad(set_to_none=False)
    assert p.grad is grad and not p.grad.data.any()
    optimizer.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS, ids=IDS)
def test_minimises_a_quadratic_through_autograd(cls, kwargs):
    target, scale = Tensor(np.array([1.0, -2.0, 3.0])), Tensor(np.array([1.0, 4.0, 0.5]))
    p = Parameter(np.zeros(3))
    optimizer = cls([p], **{**kwargs, "weight_decay": 0.0})
    for _ in range(300):
        optimizer.zero_grad()
        (((p - target) ** 2) * scale).sum().backward()
        optimizer.step()
    np.testing.assert_allclose(p.data, target.data, atol=1e-2)


# -- state_dict -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS, ids=IDS)
def test_state_dict_is_json_config_plus_numpy_arrays(cls, kwargs):
    params = make_params()
    optimizer = cls(params, **kwargs)
    set_grads(params, np.random.default_rng(1))
    optimizer.step()
    state = optimizer.state_dict()
    assert set(state) == {"config", "arrays"}
    assert json.loads(json.dumps(state["config"]))["optimizer"] == cls.__name__
    assert all(type(a) is np.ndarray for a in state["arrays"].values())
    assert all(key.split(".")[0] in ("0", "1") for key in state["arrays"])


@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS, ids=IDS)
def test_state_dict_round_trip_through_json_and_npz_continues_identically(cls, kwargs, tmp_path):
    rng = np.random.default_rng(2)
    first = make_params()
    optimizer = cls(first, **kwargs)
    for _ in range(3):
        set_grads(first, rng)
        optimizer.step()
    state = optimizer.state_dict()
    (tmp_path / "optim.json").write_text(json.dumps(state["config"]))
    np.savez(tmp_path / "optim.npz", **state["arrays"])

    second = [Parameter(p.data.copy()) for p in first]
    resumed = cls(second, lr=123.0)  # every hyperparameter comes back from the state
    with np.load(tmp_path / "optim.npz") as arrays:
        resumed.load_state_dict({"config": json.loads((tmp_path / "optim.json").read_text()), "arrays": dict(arrays)})
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    if "betas" in resumed.defaults:
        assert isinstance(resumed.param_groups[0]["betas"], tuple)
    for _ in range(3):
        seed = int(rng.integers(1 << 30))
        set_grads(first, np.random.default_rng(seed))
        set_grads(second, np.random.default_rng(seed))
        optimizer.step()
        resumed.step()
    for p, q in zip(first, second):
        np.testing.assert_array_equal(p.data, q.data)


def test_loaded_state_takes_the_parameters_dtype_and_is_a_copy():
    source = make_params()
    optimizer = SGD(source, lr=0.1, momentum=0.9)
    set_grads(source, np.random.default_rng(0))
    optimizer.step()
    state = optimizer.state_dict()
    target = make_params(dtype=np.float32)
    loaded = SGD(target, lr=0.1, momentum=0.9)
    loaded.load_state_dict(state)
    buffer = loaded.state[target[0]]["momentum_buffer"]
    assert buffer.dtype == np.float32
    buffer[...] = 0
    assert state["arrays"]["0.momentum_buffer"].any()


def test_load_state_dict_errors_name_the_mismatch():
    params = make_params()
    optimizer = Adam(params)
    set_grads(params, np.random.default_rng(0))
    optimizer.step()
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match="saved by 'Adam', not SGD"):
        SGD(make_params(), lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"groups of sizes \[2\] but this optimizer has \[1\]"):
        Adam(make_params()[:1]).load_state_dict(state)
    wrong = [Parameter(np.zeros((3, 4))), Parameter(np.zeros(3))]
    with pytest.raises(ValueError, match=r"'0.exp_avg' has shape \(4, 3\) but parameter 0 has shape \(3, 4\)"):
        Adam(wrong).load_state_dict(state)
    stray = {"config": state["config"], "arrays": {**state["arrays"], "7.exp_avg": np.zeros(3)}}
    with pytest.raises(ValueError, match="'7.exp_avg' names no parameter"):
        Adam(make_params()).load_state_dict(stray)


# -- devices ------------------------------------------------------------------------------------

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS, ids=IDS)
def test_updates_stay_on_the_parameters_device_and_match_the_cpu(cls, kwargs, device):
    if device != "cpu" and not backend.gpu_available(device):
        pytest.skip("needs an NVIDIA GPU and CuPy")
    here, cpu = make_params(device=device, dtype=np.float32), make_params(dtype=np.float32)
    optimizer, reference = cls(here, **kwargs), cls(cpu, **kwargs)
    for step in range(4):
        for params in (here, cpu):
            set_grads(params, np.random.default_rng(step))
        optimizer.step()
        reference.step()
    for p, q in zip(here, cpu):
        assert p.device == backend.device(device)
        np.testing.assert_allclose(backend.to_numpy(p.data), q.data, rtol=1e-5, atol=1e-6)
    assert all(backend.device_of(a) == backend.device(device)
               for state in optimizer.state.values() for a in state.values() if hasattr(a, "shape"))
    restored = cls(make_params(device=device, dtype=np.float32), **kwargs)
    restored.load_state_dict(optimizer.state_dict())
    assert all(backend.device_of(a) == backend.device(device)
               for state in restored.state.values() for a in state.values() if hasattr(a, "shape"))


def test_repr_lists_each_group_and_its_settings():
    p, q = Parameter(np.ones(1)), Parameter(np.ones(1))
    text = repr(SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (") and "group 1: 1 parameters, lr=0.5, momentum=0.9" in text
