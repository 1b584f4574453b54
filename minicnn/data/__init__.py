"""Data: datasets, the DataLoader, batch transforms, file readers and where the files come from.

    from minicnn import data

    train = data.load_dataset("mnist", "train")        # finds, or downloads, and checks the files
    for images, labels in data.DataLoader(train, batch_size=64, shuffle=True, seed=0):
        ...                                             # (64, 1, 28, 28) float32 in [0, 1], (64,) int64

Datasets are registered by plugins (built in: mnist, fashion-mnist, cifar10, digits, image-folder);
`load_dataset` looks the name up in that registry. A dataset that cannot be found or downloaded
raises DataUnavailableError listing every place tried; a bad file raises DataFormatError.
"""

from __future__ import annotations

from minicnn.data import transforms
from minicnn.data.dataset import ArrayDataset, Dataset
from minicnn.data.errors import DataError, DataFormatError, DataUnavailableError, DownloadError
from minicnn.data.loader import DataLoader


def load_dataset(name: str, split: str = "train", **options) -> Dataset:
    """Build the dataset registered as `name` for `split`; options go to its factory
    (for the built-in ones: data_dir, download, progress, transform, ...)."""
    from minicnn.plugin.manager import dataset_entry  # the registry sits a layer above data

    return dataset_entry(name).target(split=split, **options)


__all__ = [
    "ArrayDataset", "DataError", "DataFormatError", "DataLoader", "DataUnavailableError", "Dataset",
    "DownloadError", "load_dataset", "transforms",
]
