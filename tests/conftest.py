"""Fixtures shared across the test folders."""

import zlib

import numpy as np
import pytest


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    """Each test that takes it runs in float32 and in float64."""
    return request.param


@pytest.fixture
def rng(request):
    """A generator seeded from the test's own id: fresh inputs per case, each case reproducible on its own."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user data folder, mirror or proxy; the download cache in a temporary folder."""
    for name in ("MINICNN_DATA", "MINICNN_MIRROR", "XDG_CACHE_HOME", "http_proxy", "HTTP_PROXY", "https_proxy",
                 "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
