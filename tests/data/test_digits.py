"""The bundled digits: all 1,797 images, MNIST-framed, split deterministically, labels as in the CSV."""

import gzip
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from minicnn.data.digits import bilinear_matrix, load_digits, read_digits_csv, split_indices, to_mnist_frame


def test_the_csv_is_the_uci_test_set():
    images, labels = read_digits_csv()
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    folder = resources.files("minicnn.data").joinpath("digits")
    assert "CC BY 4.0" in folder.joinpath("README.md").read_text() and folder.joinpath("LICENSE").is_file()


def test_splits_are_disjoint_stratified_and_cover_everything():
    _, labels = read_digits_csv()
    train, test = split_indices(labels, "train"), split_indices(labels, "test")
    assert len(train) + len(test) == 1797 and not set(train) & set(test)
    assert (len(train), len(test)) == (1438, 359)
    assert np.all(np.abs(np.bincount(labels[test]) / np.bincount(labels) - 0.2) < 0.01)
    assert np.array_equal(split_indices(labels, "test"), test)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        split_indices(labels, "val")


def test_loaded_images_are_mnist_framed_and_labels_match_the_csv():
    raw, labels = read_digits_csv()
    lines = gzip.decompress(resources.files("minicnn.data").joinpath("digits/digits.csv.gz").read_bytes()).splitlines()
    last_column = [int(line.rsplit(b",", 1)[1]) for line in lines]
    assert labels.tolist() == last_column
    for split in ("train", "test"):
        images, split_labels = load_digits(split)
        chosen = split_indices(labels, split)
        assert images.shape == (len(chosen), 1, 28, 28) and images.dtype == np.uint8
        assert np.array_equal(split_labels, labels[chosen]) and set(split_labels.tolist()) == set(range(10))
        assert images[:, :, :4].max() == 0 and images[:, :, -4:].max() == 0 and images.max() == 255
    assert to_mnist_frame(np.full((1, 8, 8), 16))[0, 0, 4:24, 4:24].min() == 255


def test_bilinear_matches_pillow():
    image = read_digits_csv()[0][5].astype(np.float32)
    resize = bilinear_matrix(8, 20)
    pillow = np.asarray(Image.fromarray(image).resize((20, 20), Image.Resampling.BILINEAR))
    assert np.allclose(resize @ image @ resize.T, pillow, atol=1e-4)
    assert np.allclose(resize.sum(axis=1), 1)
