"""Dataset and ArrayDataset: what they hold, what indexing gives, what they refuse."""

import numpy as np
import pytest

from minicnn.data import ArrayDataset, Dataset


def test_array_dataset_holds_arrays_and_describes_itself():
    images = np.zeros((5, 3, 4, 6), dtype=np.uint8)
    images[2] = 255
    data = ArrayDataset(images, [0, 1, 2, 1, 0], ["x", "y", "z"])
    assert len(data) == 5 and data.num_classes == 3 and data.input_size == (3, 4, 6)
    assert data.labels.dtype == np.int64 and data.images is images
    image, label = data[2]
    assert image.dtype == np.float32 and image.shape == (3, 4, 6) and image.max() == 1.0 and label == 2
    assert isinstance(label, int) and data[-1][1] == 0
    assert repr(data) == "ArrayDataset(5 images of 3x4x6 uint8, 3 classes)"


def test_default_classes_and_float_images():
    data = ArrayDataset(np.full((3, 1, 2, 2), 0.5), np.array([0, 3, 1]))
    assert data.classes == ["0", "1", "2", "3"] and data.images.dtype == np.float32
    assert data[0][0].max() == 0.5


@pytest.mark.parametrize("images, labels, classes, error, message", [
    (np.zeros((2, 4, 4)), [0, 1], None, ValueError, r"images must be \(N, C, H, W\), got shape \(2, 4, 4\)"),
    (np.zeros((2, 1, 4, 4), dtype=np.int32), [0, 1], None, TypeError, "uint8 or floating point, got int32"),
    (np.zeros((2, 1, 4, 4)), [0, 1, 1], None, ValueError, r"labels must be \(N,\) = \(2,\), got shape \(3,\)"),
    (np.zeros((2, 1, 4, 4)), [0.0, 1.0], None, TypeError, "labels must be integers"),
    (np.zeros((2, 1, 4, 4)), [0, 2], ["a", "b"], ValueError, "labels span 0..2, but there are 2 classes"),
])
def test_refusals_say_what_is_wrong(images, labels, classes, error, message):
    with pytest.raises(error, match=message):
        ArrayDataset(images, labels, classes)


def test_the_base_class_asks_subclasses_for_len_and_getitem():
    with pytest.raises(NotImplementedError, match="Dataset must define __len__"):
        len(Dataset())

    class One(Dataset):
        def __getitem__(self, i):
            return np.zeros((1, 5, 7)), 0

    assert One().input_size == (1, 5, 7) and One().num_classes == 0
