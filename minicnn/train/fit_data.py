"""What `mc.fit` and `mc.evaluate` take as data, made into datasets the training loop can batch.

Four kinds, for each of `train`, `test` and `data`:

    "digits"                 a registered dataset's name (`minicnn datasets`): its train or test split
    (images, labels)         arrays: images (N, C, H, W), or (N, H, W) given a channel axis, uint8
                             (0..255, scaled to [0, 1]) or float; labels (N,) integers 0..K-1
    ArrayDataset(...)        a minicnn dataset (anything `data.load_dataset` returns, or your own
                             `data.Dataset` with `classes`)
    DataLoader(...)          your own batches, used exactly as given

fit may add its normalisation and augmentation to arrays, names and datasets without a transform
(`GivenData.adjustable`), always on its own copy, so the caller's dataset is never changed; a
DataLoader, or a dataset with its own transform, is the caller's to prepare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minicnn import data
from minicnn.autograd import Tensor
from minicnn.data.dataset import Dataset

KINDS = "a registered dataset name, an (images, labels) pair of arrays, a minicnn Dataset or a DataLoader"


@dataclass
class GivenData:
    """One data argument, taken apart.

    dataset: the samples (for a DataLoader, its dataset); loader: the caller's own DataLoader or None;
    name: the registered dataset's name, when given by name; kind: what was given, in words (recorded
    in the run's settings); adjustable: whether fit may add its own transform (to a copy).
    """

    dataset: Dataset
    loader: data.DataLoader | None
    name: str | None
    kind: str
    adjustable: bool

    @property
    def input_size(self) -> tuple[int, ...]:
        return tuple(self.dataset.input_size)

    @property
    def classes(self) -> list:
        return list(getattr(self.dataset, "classes", ()))

    def with_transform(self, transform) -> Dataset:
        """A dataset of the same samples with `transform` as its batch transform (the arrays are shared,
        not copied); the dataset itself when there is none to add."""
        if transform is None:
            return self.dataset
        if isinstance(self.dataset, data.ArrayDataset):
            return data.ArrayDataset(self.dataset.images, self.dataset.labels, self.dataset.classes, transform)
        return TransformedDataset(self.dataset, transform)

    def batches(self, batch_size: int, transform=None, shuffle: bool = False, seed: int | None = None,
                part: tuple[int, int] = (0, 1)):
        """The caller's DataLoader as given, or one over the dataset: with `transform` added when the
        data is adjustable, as given when not; `part`: this rank's share of each batch (DataLoader).
        A given DataLoader must have been made with that part."""
        if self.loader is not None:
            if tuple(getattr(self.loader, "part", (0, 1))) != tuple(part):
                raise ValueError(f"a DataLoader given to fit(distributed=True) must be made with part={tuple(part)} "
                                 "(this rank's share of each batch: DataLoader(..., part=(rank, ranks))); or give "
                                 "fit the arrays or dataset, which it splits between the ranks itself")
            return self.loader
        dataset = self.with_transform(transform) if self.adjustable else self.dataset
        return data.DataLoader(dataset, batch_size, shuffle=shuffle, seed=seed, part=part)


class TransformedDataset(Dataset):
    """Another dataset's samples with a batch transform of its own (that dataset is left as it was)."""

    def __init__(self, dataset: Dataset, transform):
        self.dataset, self.transform = dataset, transform
        self.classes = list(getattr(dataset, "classes", ()))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]


def given_data(value, argument: str, split: str, classes: list | None = None) -> GivenData:
    """`value`, one of the four kinds of the module's docstring, as GivenData.

    argument: its name in the caller's call ("train", "test", "data"), which every error names.
    split: the split a dataset name stands for ("train" or "test"). classes: the class names arrays
    take (the training data's, for test arrays); None: "0".."K-1" for K = the largest label + 1.
    Raises ValueError for data of the right kind that cannot be used, TypeError for another kind.
    """
    if isinstance(value, str):
        return _named(value, argument, split)
    if isinstance(value, data.DataLoader):
        return GivenData(value.dataset, value, None, "DataLoader", adjustable=False)
    if isinstance(value, Dataset):
        transformed = getattr(value, "transform", None) is not None
        return GivenData(value, None, None, type(value).__name__, adjustable=not transformed)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return GivenData(_arrays(*value, argument, classes), None, None, "arrays", adjustable=True)
    raise TypeError(f"{argument} must be {KINDS}, got {type(value).__name__}")


def _named(name: str, argument: str, split: str) -> GivenData:
    from minicnn.plugin.manager import plugin_system  # the registry sits above the data layer
    from minicnn.plugin.registry import RegistryError

    try:
        plugin_system().registries["datasets"].get(name)
    except RegistryError as error:
        raise ValueError(f"{argument}: {error}; or give the data as (images, labels) arrays") from None
    return GivenData(data.load_dataset(name, split), None, name, f"dataset '{name}'", adjustable=True)


def _arrays(images, labels, argument: str, classes: list | None) -> data.ArrayDataset:
    """An ArrayDataset of `(images, labels)`, or a ValueError that names `argument` and the fix."""
    images, labels = (value.numpy() if isinstance(value, Tensor) else np.asarray(value) for value in (images, labels))
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"{argument}: images must be (N, C, H, W), or (N, H, W) for one channel, got shape "
                         f"{images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{argument}: images must be uint8 (0..255) or floating point, got {images.dtype}; "
                         "convert them with images.astype(np.uint8) or images.astype(np.float32)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{argument}: labels must be (N,) = ({len(images)},), one per image, got shape {labels.shape}")
    if not len(labels):
        raise ValueError(f"{argument}: there are no images (N = 0)")
    if not np.issubdtype(labels.dtype, np.integer):
        whole = np.issubdtype(labels.dtype, np.floating) and np.array_equal(labels, np.round(labels))
        if not whole:
            raise ValueError(f"{argument}: labels must be whole numbers (class indices), got {labels.dtype}")
        labels = labels.astype(np.int64)
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise ValueError(f"{argument}: images hold NaN or infinite values")
    top = len(classes) - 1 if classes is not None else None
    if labels.min() < 0 or (top is not None and labels.max() > top):
        span = f"0..{top}, the training data's classes" if top is not None else "0 or more"
        raise ValueError(f"{argument}: labels span {labels.min()}..{labels.max()}, but must be {span}")
    return data.ArrayDataset(images, labels, classes)
