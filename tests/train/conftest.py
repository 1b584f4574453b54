"""Shared fixtures of the training tests: an isolated data environment and the real MNIST folder."""

from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"
UNREACHABLE_MIRROR = "http://127.0.0.1:9/"  # the discard port: nothing listens there


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user data folder, mirror or proxy; the download cache in a temporary folder."""
    for name in ("MINICNN_DATA", "MINICNN_MIRROR", "XDG_CACHE_HOME", "http_proxy", "HTTP_PROXY", "https_proxy",
                 "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


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
