"""Fixtures shared by the architecture plugins' tests."""

import numpy as np
import pytest

import minicnn as mc


@pytest.fixture
def same_as_torch():
    """`check(ours, reference, seed)`: load the torch module's weights into ours (their state_dict
    names and order must be identical), then both compute the same eval-mode output on a random
    1x3x224x224 image, to 1e-4 of its largest value."""
    torch = pytest.importorskip("torch")

    def check(ours, reference, seed: int) -> None:
        state = {name: value.detach().numpy() for name, value in reference.state_dict().items()}
        assert list(ours.state_dict()) == list(state)
        ours.load_state_dict(state)
        ours.eval()
        reference.eval()
        x = np.random.default_rng(seed).standard_normal((1, 3, 224, 224)).astype(np.float32)
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        with mc.no_grad():
            actual = ours(mc.tensor(x)).numpy()
        assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()

    return check
