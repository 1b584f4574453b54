"""Shared fixtures of the training tests: an isolated data environment and the real MNIST folder."""

from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"
UNREACHABLE_MIRROR = "http://127.0.0.1:9/"  # the discard port: nothing listens there




@pytest.fixture
def offline(isolated, monkeypatch):
    """The isolated environment with every download going to a port where nothing listens."""
    monkeypatch.setenv("MINICNN_MIRROR", UNREACHABLE_MIRROR)
    return isolated


@pytest.fixture
def shared_mnist() -> Path:
    """The read-only folder of the four original MNIST .gz files (never written to)."""
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if not all((SHARED_MNIST / f"{name}.gz").is_file() for name in names):
        pytest.skip(f"the real MNIST files are not in {SHARED_MNIST.resolve()}")
    return SHARED_MNIST


@pytest.fixture(autouse=True)
def _isolated_data(isolated):
    """Every test in this folder runs with the isolated data environment (tests/conftest.py)."""
    return isolated
