"""Initialisation: PyTorch's default ranges for Conv2d and Linear, the He / Glorot formulas, fills,
fan arithmetic, and seeding.

Distributions are checked with enough draws that a wrong formula (or a normal where a uniform is due)
is far outside the tolerances: the bound itself, the spread up to it, the first two moments, and a
Kolmogorov-Smirnov test against the exact distribution. Every draw is seeded, so the tests are
deterministic.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from scipy import stats

import minicnn as mc
from minicnn import nn
from minicnn.nn import init


def blank(*shape, dtype=np.float32):
    return mc.tensor(np.zeros(shape, dtype=dtype))


def assert_uniform(values, bound, label):
    """values ~ U(-bound, bound): inside it, reaching its ends, mean 0, variance bound^2/3."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    assert np.abs(values).max() <= bound * (1 + 1e-6), f"{label}: a value outside ±{bound}"
    assert values.max() > bound * (1 - 20 / n) and values.min() < -bound * (1 - 20 / n), f"{label}: not spread to ±{bound}"
    assert abs(values.mean()) < 5 * bound / math.sqrt(3 * n), f"{label}: mean {values.mean()}"
    assert values.var() == pytest.approx(bound**2 / 3, rel=5 / math.sqrt(n)), f"{label}: variance"
    assert stats.kstest(values, stats.uniform(loc=-bound, scale=2 * bound).cdf).pvalue > 1e-3, f"{label}: KS test"


def assert_normal(values, std, label):
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    assert abs(values.mean()) < 5 * std / math.sqrt(n), f"{label}: mean {values.mean()}"
    assert values.std() == pytest.approx(std, rel=5 / math.sqrt(n)), f"{label}: std {values.std()} vs {std}"
    assert stats.kstest(values, stats.norm(scale=std).cdf).pvalue > 1e-3, f"{label}: KS test"


# --- fan arithmetic -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, fans", [
    ((16, 3, 5, 5), (75, 400)), ((120, 400), (400, 120)), ((8, 4, 3), (12, 24)), ((6, 1, 1, 1), (1, 6)),
    ((10, 2, 3, 4), (24, 120)),
])
def test_fan_in_and_fan_out_hand_values(shape, fans):
    assert init.fan_in_and_fan_out(blank(*shape)) == fans


def test_fan_in_and_fan_out_match_torch():
    torch = pytest.importorskip("torch")
    for shape in ((16, 3, 5, 5), (120, 400), (8, 4, 3), (10, 2, 3, 4)):
        assert init.fan_in_and_fan_out(blank(*shape)) == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))


@pytest.mark.parametrize("fill", [
    init.fan_in_and_fan_out, init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_,
])
def test_fans_of_a_1d_tensor_are_an_error(fill):
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*\(5,\)"):
        fill(blank(5))


# --- PyTorch's layer defaults ---------------------------------------------------------------------


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Conv2d(64, 128, 3), 64 * 9),
    (lambda: nn.Conv2d(32, 64, (3, 5), groups=4), 8 * 15),
    (lambda: nn.Linear(1000, 500), 1000),
])
def test_default_init_is_uniform_within_one_over_sqrt_fan_in(make, fan_in):
    mc.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    assert_uniform(layer.weight.numpy(), bound, "weight")
    bias = layer.bias.numpy()
    assert np.abs(bias).max() <= bound
    assert bias.max() > 0.8 * bound and bias.min() < -0.8 * bound
    assert abs(bias.mean()) < 5 * bound / math.sqrt(3 * bias.size)


@pytest.mark.parametrize("make, fan_in", [(lambda: nn.Conv2d(1, 2, 2), 4), (lambda: nn.Linear(3, 2), 3)])
def test_small_layers_stay_inside_the_bound(make, fan_in):
    mc.manual_seed(1)
    for _ in range(20):
        layer = make()
        for p in layer.parameters():
            assert np.abs(p.numpy()).max() <= 1 / math.sqrt(fan_in)
            assert np.unique(p.numpy()).size == p.numel()


def test_default_init_keeps_float32():
    assert nn.Conv2d(2, 3, 3).weight.dtype == np.float32
    assert nn.Linear(2, 3).bias.dtype == np.float32


# --- He and Glorot --------------------------------------------------------------------------------


def test_init_signatures_match_torch():
    torch = pytest.importorskip("torch")
    for name in ("kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "normal_"):
        mine = inspect.signature(getattr(init, name)).parameters
        theirs = inspect.signature(getattr(torch.nn.init, name)).parameters
        for arg, parameter in mine.items():
            assert arg in theirs and theirs[arg].default == parameter.default, f"{name}({arg})"


def test_uniform_and_constant_take_torchs_keyword_names():
    """torch.nn.init.uniform_(tensor, a=0.0, b=1.0) and constant_(tensor, val): code written for
    PyTorch passes them by keyword."""
    t = blank(50, 50)
    init.uniform_(t, a=-0.1, b=0.1)
    assert np.abs(t.numpy()).max() <= 0.1 and t.numpy().min() < 0
    init.constant_(t, val=0.3)
    np.testing.assert_array_equal(t.numpy(), np.full((50, 50), 0.3, dtype=np.float32))


@pytest.mark.parametrize("kwargs, gain, fan_index", [
    ({}, math.sqrt(2.0), 0),
    (dict(nonlinearity="relu"), math.sqrt(2.0), 0),
    (dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2.0), 1),
    (dict(a=0.2), math.sqrt(2.0 / 1.04), 0),
    (dict(nonlinearity="tanh", mode="fan_out"), 5.0 / 3, 1),
    (dict(nonlinearity="linear"), 1.0, 0),
])
def test_kaiming_normal_std_is_gain_over_sqrt_fan(kwargs, gain, fan_index):
    mc.manual_seed(2)
    weight = blank(256, 64, 3, 3)
    assert init.kaiming_normal_(weight, **kwargs) is weight
    fan = (64 * 9, 256 * 9)[fan_index]
    assert_normal(weight.numpy(), gain / math.sqrt(fan), str(kwargs))


@pytest.mark.parametrize("kwargs, bound", [
    ({}, math.sqrt(2.0) * math.sqrt(3.0 / 576)),
    (dict(a=math.sqrt(5)), 1 / math.sqrt(576)),
    (dict(mode="fan_out", nonlinearity="relu"), math.sqrt(6.0 / (128 * 9))),
])
def test_kaiming_uniform_bound(kwargs, bound):
    mc.manual_seed(3)
    weight = blank(128, 64, 3, 3)
    init.kaiming_uniform_(weight, **kwargs)
    assert_uniform(weight.numpy(), bound, str(kwargs))


def test_unknown_nonlinearity_is_an_error():
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_normal_(blank(3, 3), nonlinearity="swish")


@pytest.mark.parametrize("shape, gain", [((300, 200), 1.0), ((300, 200), 2.0), ((64, 32, 3, 3), 1.0)])
def test_xavier_uniform_bound(shape, gain):
    mc.manual_seed(4)
    weight = blank(*shape)
    assert init.xavier_uniform_(weight, gain=gain) is weight
    fan_in, fan_out = shape[1] * int(np.prod(shape[2:])), shape[0] * int(np.prod(shape[2:]))
    assert_uniform(weight.numpy(), gain * math.sqrt(6.0 / (fan_in + fan_out)), f"{shape} gain {gain}")


def test_uniform_and_normal_fills():
    mc.manual_seed(5)
    t = blank(200, 500)
    init.uniform_(t, -0.5, 0.5)
    assert_uniform(t.numpy(), 0.5, "uniform_")
    shifted = blank(300, 300)
    init.uniform_(shifted, 2.0, 3.0)
    assert shifted.numpy().min() >= 2.0 and shifted.numpy().max() <= 3.0
    init.normal_(t, 0.0, 0.3)
    assert_normal(t.numpy(), 0.3, "normal_")
    init.normal_(t, mean=4.0, std=0.1)
    assert t.numpy().mean() == pytest.approx(4.0, abs=5 * 0.1 / math.sqrt(t.numel()))


# --- fills ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_zeros_ones_fill_in_place_and_keep_dtype(dtype):
    t = mc.tensor(np.random.default_rng(0).standard_normal((3, 4)).astype(dtype))
    array = t.data
    assert init.constant_(t, 0.25) is t
    assert t.data is array and t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.full((3, 4), 0.25))
    init.zeros_(t)
    np.testing.assert_array_equal(t.numpy(), np.zeros((3, 4)))
    init.ones_(t)
    np.testing.assert_array_equal(t.numpy(), np.ones((3, 4)))
    assert t.data is array and t.dtype == dtype


def test_random_fills_keep_float64():
    t = blank(4, 5, dtype=np.float64)
    for fill in (init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_, init.uniform_, init.normal_):
        fill(t)
        assert t.dtype == np.float64


def test_random_fills_write_into_a_parameter_in_place():
    layer = nn.Linear(10, 10)
    parameter, array = layer.weight, layer.weight.data
    init.xavier_uniform_(layer.weight)
    assert layer.weight is parameter and layer.weight.data is array


# --- seeding --------------------------------------------------------------------------------------


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def test_manual_seed_makes_model_construction_repeatable():
    mc.manual_seed(42)
    first = lenet().state_dict()
    mc.manual_seed(42)
    second = lenet().state_dict()
    mc.manual_seed(43)
    third = lenet().state_dict()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
        assert not np.array_equal(first[name], third[name]), f"{name} is the same under another seed"


def test_successive_constructions_differ():
    mc.manual_seed(7)
    a, b = nn.Linear(5, 5), nn.Linear(5, 5)
    assert not np.array_equal(a.weight.numpy(), b.weight.numpy())
