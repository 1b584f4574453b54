"""A folder of images per class, read with Pillow: root/<class name>/<image>.png|jpg|...

Classes are the sub-folder names, sorted (label = index); files are read in sorted order. Hidden
files and folders (".name", such as macOS's "._photo.png" metadata) and files without an image
extension are ignored. A class folder with no images is refused when the folders define the classes:
a class the model can never learn is almost always a mistake (images one folder deeper, or in a
format not listed), and skipping it would silently shift the labels. When the classes are given (a
test split takes its training split's), an empty or missing class folder is allowed.

Images are resized to one size (bilinear) and converted to grey (1 channel) or RGB (3).
`image_format` decides that format from the files' headers alone, so the train and test splits can
share one decided from both. Any file Pillow cannot decode, or refuses as a possible decompression
bomb (PIL.Image.MAX_IMAGE_PIXELS), is named in the error.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
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


@contextmanager
def _opened(path: Path):
    """Pillow's image of `path`; a failure to decode it, on opening or later, names the file.

    Pillow's decoders raise many types for a malformed file (OSError, SyntaxError, ValueError,
    struct.error, EOFError...), all meaning the same to a user, hence the broad except.
    """
    Image = _pillow()
    try:
        with Image.open(path) as image:
            yield image
    except Image.DecompressionBombError as error:
        raise DataFormatError(f"{path}: too large to decode safely ({error}); resize the file, or raise "
                              "PIL.Image.MAX_IMAGE_PIXELS if you trust it") from error
    except Exception as error:
        raise DataFormatError(f"{path}: not a readable image ({error})") from error


def class_folders(root: str | os.PathLike) -> list[str]:
    """The names of root's visible sub-folders, sorted: the classes when none are given."""
    return sorted(entry.name for entry in Path(root).iterdir() if entry.is_dir() and not entry.name.startswith("."))


def find_images(root: str | os.PathLike, classes: Sequence[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths, their labels (N,) int64 and the class names; `classes` fixes names and order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    found = class_folders(root)
    unknown = sorted(set(found) - set(classes)) if classes is not None else []
    if unknown:
        raise DataFormatError(f"{root}: class folders {unknown} are not among the classes {list(classes)}")
    paths, labels = [], []
    for label, name in enumerate(found if classes is None else classes):
        folder = root / name
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        files = [f for f in files if f.is_file() and not f.name.startswith(".")]
        images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
        if not images and classes is None:
            others = f" ({len(files)} other file{'s' * (len(files) > 1)}, e.g. {files[0].name})" if files else ""
            raise DataFormatError(f"{folder}: class folder with no images{others}; add images or remove the folder")
        paths += images
        labels += [label] * len(images)
    if not paths:
        raise DataFormatError(f"{root}: no images found; expected {root}/<class name>/<image> with extensions "
                              f"{', '.join(IMAGE_EXTENSIONS)}")
    return paths, np.asarray(labels, dtype=np.int64), list(found if classes is None else classes)


def image_format(paths: Sequence[str | os.PathLike], size: int | tuple[int, int] | None = None,
                 channels: int | None = None) -> tuple[int, tuple[int, int]]:
    """(channels, (h, w)) that every one of `paths` will be read at, from their headers alone.

    size: h or (h, w) to resize to; None requires the files to be one size. channels: 1 (grey) or
    3 (RGB); None: 1 if every file is greyscale, else 3. Pass the files of every split at once to
    give them one format.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"image folder: channels must be 1, 3 or None, got {channels}")
    grey, first_size, first = True, None, None
    for path in paths:
        with _opened(path) as image:
            mode, (w, h) = image.mode, image.size
        grey = grey and mode in _GREY_MODES
        if first_size is None:
            first_size, first = (h, w), path
        elif size is None and (h, w) != first_size:
            raise DataFormatError(f"images of different sizes: {first} is {first_size[0]}x{first_size[1]}, "
                                  f"{path} is {h}x{w}; pass size=(h, w) to resize them all")
    if first_size is None:
        raise ValueError("image_format: no image files given to decide a format from")
    target = first_size if size is None else ((size, size) if np.isscalar(size) else tuple(size))
    return (channels or (1 if grey else 3)), (int(target[0]), int(target[1]))


def read_images(paths: Sequence[str | os.PathLike], size: tuple[int, int], channels: int) -> np.ndarray:
    """The files as one array (N, channels, h, w) uint8, each converted and resized by `read_image`."""
    images = np.empty((len(paths), channels, size[0], size[1]), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = read_image(path, size, channels)
    return images


def read_image_folder(root: str | os.PathLike, size: int | tuple[int, int] | None = None,
                      channels: int | None = None, classes: Sequence[str] | None = None):
    """images (N, C, H, W) uint8, labels (N,) int64, class names.

    size: h or (h, w) to resize every image to (bilinear); None requires all images to be one size.
    channels: 1 (grey) or 3 (RGB); None: 1 if every image is greyscale, else 3.
    """
    paths, labels, classes = find_images(root, classes)
    channels, size = image_format(paths, size, channels)
    return read_images(paths, size, channels), labels, classes


def read_image(path: str | os.PathLike, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 (channels, h, w): converted to grey (1) or RGB (3), resized bilinearly."""
    Image = _pillow()
    h, w = int(size[0]), int(size[1])
    if not Path(path).is_file():
        raise FileNotFoundError(f"image {path} not found")
    with _opened(Path(path)) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (w, h):
            image = image.resize((w, h), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
