"""Devices, array modules and seeding."""

import subprocess
import sys

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
