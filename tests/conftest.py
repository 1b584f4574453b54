"""Fixtures shared across the test folders."""

import pytest


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user data folder, mirror or proxy; the download cache in a temporary folder."""
    for name in ("MINICNN_DATA", "MINICNN_MIRROR", "XDG_CACHE_HOME", "http_proxy", "HTTP_PROXY", "https_proxy",
                 "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
