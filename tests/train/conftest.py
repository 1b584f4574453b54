"""Every training test runs in the isolated data environment; `offline` and `shared_mnist` come
from tests/conftest.py."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_data(isolated):
    """Every test in this folder runs with the isolated data environment (tests/conftest.py)."""
    return isolated
