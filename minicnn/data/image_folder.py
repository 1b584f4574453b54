"""A folder of images per class, read with Pillow: root/<class name>/<image>.png|jpg|...

Classes are the sub-folder names, sorted (label = index); files are read in sorted order. Images are
resized to one size (bilinear) and converted to grey (1 channel) or RGB (3).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from minicnn.data.errors import DataFormatError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _pillow():
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("reading image folders needs Pillow: pip install pillow") from error
    return Image


def find_images(root: str | os.PathLike, classes: Sequence[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths, their labels (N,) int64 and the class names; `classes` fixes names and order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    found = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataFormatError(f"{root}: class folders {unknown} are not among the classes {list(classes)}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        files = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()]
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataFormatError(f"{root}: no images found; expected {root}/<class name>/<image> with extensions "
                              f"{', '.join(IMAGE_EXTENSIONS)}")
    return paths, np.asarray(labels, dtype=np.int64), list(classes)


def read_image_folder(root: str | os.PathLike, size: int | tuple[int, int] | None = None,
                      channels: int | None = None, classes: Sequence[str] | None = None):
    """images (N, C, H, W) uint8, labels (N,) int64, class names.

    size: h or (h, w) to resize every image to (bilinear); None requires all images to be one size.
    channels: 1 (grey) or 3 (RGB); None: 1 if every image is greyscale, else 3.
    """
    Image = _pillow()
    paths, labels, classes = find_images(root, classes)
    if channels not in (None, 1, 3):
        raise ValueError(f"image folder: channels must be 1, 3 or None, got {channels}")
    target = None if size is None else ((size, size) if np.isscalar(size) else tuple(size))
    modes, sizes = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                modes.append(image.mode)
                sizes.append(image.size[::-1])
        except (OSError, SyntaxError, ValueError) as error:
            raise DataFormatError(f"{path}: not a readable image ({error})") from error
    if channels is None:
        channels = 1 if all(mode in _GREY_MODES for mode in modes) else 3
    if target is None:
        if len(set(sizes)) > 1:
            raise DataFormatError(f"{root}: images have different sizes ({sorted(set(sizes))[:4]}...): pass size=(h, w) "
                                  "to resize them")
        target = sizes[0]
    h, w = int(target[0]), int(target[1])
    images = np.empty((len(paths), channels, h, w), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = read_image(path, (h, w), channels)
    return images, labels, classes


def read_image(path: str | os.PathLike, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 (channels, h, w): converted to grey (1) or RGB (3), resized bilinearly."""
    Image = _pillow()
    h, w = int(size[0]), int(size[1])
    if not Path(path).is_file():
        raise FileNotFoundError(f"image {path} not found")
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (w, h):
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:
        raise DataFormatError(f"{path}: not a readable image ({error})") from error
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
