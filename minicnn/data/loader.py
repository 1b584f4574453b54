"""DataLoader: batches of NumPy arrays (or Tensors on a device, when asked), shuffled and augmented
reproducibly per (seed, epoch).

Epoch e's order comes from `numpy.random.default_rng([seed, e])` and the transform randomness of its
batch b from `default_rng([seed, e, b])`, so every batch is a function of (seed, epoch, batch index)
alone: a run resumed at epoch e (`loader.set_epoch(e)`) sees exactly the batches it would have seen.

In data-parallel training every rank makes the same loader with its `part=(rank, ranks)`: batches
stay the whole job's ("global") batches of one shared order, and each rank takes its contiguous
slice of each (`numpy.array_split`), so R ranks together see what one process sees, in the same
order. Augmentation is drawn per rank, from `default_rng([seed, e, b, rank])`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.backend import random_generator
from minicnn.data.dataset import ArrayDataset, pixels_to_float


def _as_float_batch(images: np.ndarray, owned: bool) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; anything else -> float32, copied unless `owned` (never a view of
    the dataset, so a caller may change a batch in place). images: (B, C, H, W)."""
    if images.dtype == np.uint8:
        return pixels_to_float(images)
    return images.astype(np.float32, copy=not owned)


class DataLoader:
    """Iterate over a dataset in batches: `(images float32 (B, C, H, W), labels int64 (B,))`.

    shuffle: a new order each epoch; drop_last: skip a final batch smaller than batch_size.
    seed: fixes the order and augmentation of every epoch; None draws one from minicnn's generator
    (so `mc.manual_seed` makes it reproducible too). `loader.seed` records it for checkpoints.

    Each `iter(loader)` is one epoch: it uses `loader.epoch` and then advances it, so two loops
    give two different shuffles. To resume, call `set_epoch(e)` (as with PyTorch's
    DistributedSampler) before iterating.

    part: `(rank, ranks)`, this process's share of every batch in data-parallel training (see the
    module's docstring); `batch_size` and `len(loader)` stay the whole job's. A rank's slice of a
    final batch smaller than `ranks` may be empty.

    as_tensors: yield `(Tensor, Tensor)` on `device` (default "cpu") instead of NumPy arrays, the
    same values and dtypes, for a training loop written PyTorch's way. NumPy arrays stay the default
    because minicnn's trainer and transforms work on arrays; the device is checked when the loader
    is made, so a missing GPU is reported before the first batch.

    An `ArrayDataset` is sliced a whole batch at a time (one fancy index, no per-sample Python);
    any other dataset's samples are stacked. `dataset.transform`, if set, is applied per batch.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, *, as_tensors: bool = False, device=None, part: tuple[int, int] = (0, 1)):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size}")
        if device is not None and not as_tensors:
            raise ValueError(f"DataLoader: device={device!r} places Tensors, and this loader yields NumPy "
                             "arrays: pass as_tensors=True as well")
        self.as_tensors = bool(as_tensors)
        self.device = backend.device(device) if self.as_tensors else None
        if self.device is not None and self.device.type != "cpu":
            backend.check_cuda_device(self.device)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(random_generator().integers(2**63)) if seed is None else int(seed)
        self.epoch = 0
        rank, ranks = part
        if not 0 <= rank < ranks:
            raise ValueError(f"DataLoader: part must be (rank, ranks) with 0 <= rank < ranks, got {part!r}")
        self.part = (int(rank), int(ranks))

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch `epoch` (counting from 0)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_size_of(self, batch: int) -> int:
        """How many images batch `batch` (counting from 0) holds across all parts: batch_size but
        for a final, smaller one."""
        return min(self.batch_size, len(self.dataset) - batch * self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of one epoch, in the order they are batched."""
        n = len(self.dataset)
        return np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int):
        order = self.order(epoch)
        transform = getattr(self.dataset, "transform", None)
        rank, ranks = self.part
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            key = [self.seed, epoch, b]
            if ranks > 1:
                indices, key = np.array_split(indices, ranks)[rank], key + [rank]
            images, labels = self._fetch(indices, contiguous=not self.shuffle)
            if transform is not None:
                images = transform(images, np.random.default_rng(key))
            if self.as_tensors:
                images = Tensor(backend.to_device(images, self.device))
                labels = Tensor(backend.to_device(labels.astype(np.int64, copy=False), self.device))
            yield images, labels

    def _fetch(self, indices: np.ndarray, contiguous: bool):
        data = self.dataset
        if isinstance(data, ArrayDataset):
            if contiguous and len(indices):
                where = slice(int(indices[0]), int(indices[-1]) + 1)
                return _as_float_batch(data.images[where], owned=False), data.labels[where].copy()
            return _as_float_batch(data.images[indices], owned=True), data.labels[indices]
        samples = [data[int(i)] for i in indices]
        images = np.stack([np.asarray(image) for image, _ in samples])
        if images.ndim == 3:
            images = images[:, None]
        labels = np.asarray([int(label) for _, label in samples], dtype=np.int64)
        return _as_float_batch(images, owned=True), labels

    def __repr__(self) -> str:
        tensors = f", as_tensors=True, device='{self.device}'" if self.as_tensors else ""
        tensors += f", part={self.part}" if self.part[1] > 1 else ""
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch}{tensors})")
