"""Datasets: indexable (image, label) collections, and `ArrayDataset`, which holds whole arrays.

Images are (C, H, W). `Dataset.transform` is a *batch* transform (see `minicnn.data.transforms`): the
DataLoader applies it to each batch with that batch's random generator, so augmentation is vectorised
and reproducible. Indexing a dataset gives the untransformed sample.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class Dataset:
    """What the DataLoader needs: `len(ds)` and `ds[i] -> (image (C, H, W), int label)`.

    Subclasses may set `classes` (names, index = label) and `transform` (a batch transform).
    A uint8 image is scaled to [0, 1] by the DataLoader; any other dtype is cast to float32.
    """

    classes: Sequence[str] = ()
    transform: Callable | None = None

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int, ...]:
        """(C, H, W) of one image (before any transform)."""
        return tuple(np.shape(self[0][0]))


def pixels_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1], for any shape: the one rule every path from stored images
    to model inputs uses (training batches, single items, predict), so all see the same values."""
    values = images.astype(np.float32)
    values *= np.float32(1.0 / 255.0)
    return values


class ArrayDataset(Dataset):
    """A dataset held as two arrays, which the DataLoader slices a whole batch at a time.

    images: (N, C, H, W), uint8 (0..255, scaled to [0, 1] when batched) or float32.
    labels: (N,) integers in 0..len(classes)-1.
    classes: the class names; by default "0".."K-1" for K = labels.max() + 1.
    transform: a batch transform the DataLoader applies, e.g. `RandomCrop(32, padding=4)`.
    """

    def __init__(self, images, labels, classes: Sequence[str] | None = None, transform: Callable | None = None):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must be (N, C, H, W), got shape {images.shape}")
        if images.dtype != np.uint8:
            if not np.issubdtype(images.dtype, np.floating):
                raise TypeError(f"ArrayDataset: images must be uint8 or floating point, got {images.dtype}")
            images = images.astype(np.float32, copy=False)
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"ArrayDataset: labels must be (N,) = ({len(images)},), got shape {labels.shape}")
        if len(labels) and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"ArrayDataset: labels must be integers, got {labels.dtype}")
        labels = labels.astype(np.int64, copy=False)
        if classes is None:
            classes = [str(k) for k in range(int(labels.max()) + 1 if len(labels) else 0)]
        classes = list(classes)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"ArrayDataset: labels span {labels.min()}..{labels.max()}, but there are "
                             f"{len(classes)} classes (labels must be 0..{len(classes) - 1})")
        self.images, self.labels, self.classes, self.transform = images, labels, classes, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        image = pixels_to_float(image) if image.dtype == np.uint8 else image
        return image, int(self.labels[index])

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __repr__(self) -> str:
        return (f"ArrayDataset({len(self)} images of {'x'.join(map(str, self.input_size))} {self.images.dtype}, "
                f"{self.num_classes} classes)")
