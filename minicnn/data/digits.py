"""The bundled offline dataset: 1,797 real handwritten digits (UCI "Optical Recognition of Handwritten
Digits", E. Alpaydin and C. Kaynak, 1998, CC BY 4.0; see digits/README.md), shaped like MNIST.

Each 8x8 image (values 0..16) is enlarged to 20x20 by bilinear interpolation and centred in a 28x28
frame with 4 blank pixels on each side, as MNIST centres its digits in a 20x20 box, then scaled to
uint8 0..255. The split is fixed: per class, a seeded shuffle puts 20% in "test" and 80% in "train".
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

CSV = "digits/digits.csv.gz"
SIZE, BOX = 28, 20
SPLIT_SEED, TEST_FRACTION = 1998, 0.2


def read_digits_csv() -> tuple[np.ndarray, np.ndarray]:
    """The bundled CSV as it stands: images (1797, 8, 8) in 0..16 and labels (1797,) int64."""
    with resources.files("minicnn.data").joinpath(CSV).open("rb") as f, gzip.open(f) as csv:
        table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    return table[:, :64].reshape(-1, 8, 8), table[:, 64]


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling along one axis, pixel centres aligned as PIL and
    torch (align_corners=False) do; `R @ x` resizes a column, `R @ X @ R.T` an image."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = centres - low
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), low), 1 - frac)
    np.add.at(weights, (np.arange(n_out), high), frac)
    return weights


def to_mnist_frame(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) in 0..16 -> (N, 1, 28, 28) uint8: enlarged to 20x20, centred, scaled to 0..255."""
    resize = bilinear_matrix(images.shape[-1], BOX)
    enlarged = np.einsum("ij,njk,lk->nil", resize, images.astype(np.float64), resize)
    margin = (SIZE - BOX) // 2
    framed = np.zeros((len(images), 1, SIZE, SIZE), dtype=np.uint8)
    framed[:, 0, margin:margin + BOX, margin:margin + BOX] = np.rint(enlarged * (255 / 16)).astype(np.uint8)
    return framed


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of `split` ("train" or "test"): a fixed stratified 80/20 split, in ascending order."""
    if split not in ("train", "test"):
        raise ValueError(f"digits: unknown split '{split}' (splits: train, test)")
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for label in range(10):
        members = np.flatnonzero(labels == label)
        test.append(rng.permutation(members)[:round(TEST_FRACTION * len(members))])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test)] = True
    return np.flatnonzero(is_test if split == "test" else ~is_test)


def load_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """images (N, 1, 28, 28) uint8 and labels (N,) int64 of one split."""
    images, labels = read_digits_csv()
    chosen = split_indices(labels, split)
    return to_mnist_frame(images[chosen]), labels[chosen]
