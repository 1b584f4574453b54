"""Batch transforms: each maps a whole float32 batch (B, C, H, W) to a new one, vectorised.

`transform(batch, rng)` takes the batch's NumPy Generator (the DataLoader passes one derived from
(seed, epoch, batch index)), so augmentation is reproducible. The random ones are the augmentation
AlexNet used on ImageNet and ResNet on CIFAR: pad, random crop, random horizontal flip.

    train_tf = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _check_batch(batch: np.ndarray, name: str) -> np.ndarray:
    batch = np.asarray(batch)
    if batch.ndim != 4:
        raise ValueError(f"{name}: expects a batch (B, C, H, W), got shape {batch.shape}")
    return batch


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _pair(size, name: str) -> tuple[int, int]:
    h, w = (size, size) if np.isscalar(size) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"{name}: size must be positive, got {size}")
    return int(h), int(w)


class Compose:
    """Apply transforms in order, each with the same generator."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, batch: np.ndarray, rng=None) -> np.ndarray:
        rng = _generator(rng)
        for transform in self.transforms:
            batch = transform(batch, rng)
        return batch

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class Normalize:
    """(x - mean[c]) / std[c] per channel; mean and std are one value or one per channel."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be scalars or 1-D, got {self.mean.shape}, {self.std.shape}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, batch: np.ndarray, rng=None) -> np.ndarray:
        batch = _check_batch(batch, "Normalize")
        channels = batch.shape[1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"Normalize: {len(values)} {name} values for a batch of {channels} channels "
                                 f"(shape {batch.shape})")
        mean, scale = self.mean[:, None, None], (1.0 / self.std)[:, None, None]
        return ((batch - mean) * scale).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Pad:
    """Pad H and W with a constant, as torchvision does.

    padding: n (all sides), (left/right, top/bottom) or (left, top, right, bottom).
    (B, C, H, W) -> (B, C, H + top + bottom, W + left + right).
    """

    def __init__(self, padding, fill: float = 0.0):
        values = (padding,) if np.isscalar(padding) else tuple(padding)
        if len(values) not in (1, 2, 4) or any(int(v) < 0 for v in values):
            raise ValueError(f"Pad: padding must be n, (lr, tb) or (l, t, r, b) of non-negative ints, got {padding}")
        if len(values) == 1:
            values = values * 4
        elif len(values) == 2:
            values = (values[0], values[1], values[0], values[1])
        self.left, self.top, self.right, self.bottom = (int(v) for v in values)
        self.fill = fill

    def __call__(self, batch: np.ndarray, rng=None) -> np.ndarray:
        batch = _check_batch(batch, "Pad")
        widths = ((0, 0), (0, 0), (self.top, self.bottom), (self.left, self.right))
        return np.pad(batch, widths, mode="constant", constant_values=self.fill)

    def __repr__(self) -> str:
        return f"Pad(({self.left}, {self.top}, {self.right}, {self.bottom}), fill={self.fill})"


class RandomCrop:
    """Crop each image at its own random offset, after optional padding.

    size: h or (h, w). padding: as in `Pad` (0: none). (B, C, H, W) -> (B, C, h, w).
    """

    def __init__(self, size, padding=0, fill: float = 0.0):
        self.size = _pair(size, "RandomCrop")
        self.pad = Pad(padding, fill) if np.any(np.asarray(padding) != 0) else None

    def __call__(self, batch: np.ndarray, rng=None) -> np.ndarray:
        batch = _check_batch(batch, "RandomCrop")
        if self.pad is not None:
            batch = self.pad(batch)
        (h, w), (height, width) = self.size, batch.shape[2:]
        if h > height or w > width:
            raise ValueError(f"RandomCrop: crop {h}x{w} is larger than the (padded) images {height}x{width}")
        rng = _generator(rng)
        top = rng.integers(0, height - h + 1, size=len(batch))
        left = rng.integers(0, width - w + 1, size=len(batch))
        windows = np.lib.stride_tricks.sliding_window_view(batch, (h, w), axis=(2, 3))  # (B, C, H', W', h, w)
        return np.ascontiguousarray(windows[np.arange(len(batch)), :, top, left])

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, pad={self.pad})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, batch: np.ndarray, rng=None) -> np.ndarray:
        batch = _check_batch(batch, "RandomHorizontalFlip")
        flip = _generator(rng).random(len(batch)) < self.p
        out = batch.copy()
        out[flip] = batch[flip, :, :, ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
