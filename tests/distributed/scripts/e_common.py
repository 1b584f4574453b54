"""What the ranks of a test job share: where they write their results (read by conftest's Job)."""

from __future__ import annotations

import pickle
from pathlib import Path


def save(folder, rank: int, results: dict) -> None:
    """Write this rank's `results` (picklable values) for the test to read as `job.results(rank)`."""
    with open(Path(folder) / f"rank{rank}.pkl", "wb") as file:
        pickle.dump(results, file)
