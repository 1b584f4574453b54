"""The built-in datasets plugin: mnist, fashion-mnist, cifar10, digits and image-folder.

Each factory is `factory(split="train", data_dir=None, download=True, progress=None, **options)` and
returns an `ArrayDataset` with its class names; options every factory takes are `transform` (a batch
transform the DataLoader applies) and, for the downloadable ones, `verify` and `mirrors` (see
`minicnn.data.sources.locate`). "digits" ships inside the package and needs neither disk nor network,
so it accepts and ignores the location options.
"""

from __future__ import annotations

from pathlib import Path

from minicnn.data import ArrayDataset, DataFormatError, DataUnavailableError
from minicnn.data.cifar import CLASSES as CIFAR10_CLASSES, TEST_FILES, TRAIN_FILES, read_cifar10
from minicnn.data.digits import load_digits
from minicnn.data.idx import read_idx_pair
from minicnn.data.image_folder import class_folders, find_images, image_format, read_images
from minicnn.data.sources import locate
from minicnn.plugin.hookspecs import hookimpl

SPLITS = ("train", "test")
DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def _check_split(dataset: str, split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{dataset}: unknown split '{split}' (splits: {', '.join(SPLITS)})")


def _idx_dataset(dataset, classes, split, data_dir, download, progress, transform, verify, mirrors):
    _check_split(dataset, split)
    prefix = "train" if split == "train" else "t10k"
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    found = locate(dataset, names, data_dir, download=download, progress=progress, mirrors=mirrors, verify=verify)
    images, labels = read_idx_pair(found[names[0]], found[names[1]], num_classes=len(classes))
    return ArrayDataset(images, labels, classes, transform)


def mnist(split="train", data_dir=None, download=True, progress=None, *, transform=None, verify=True, mirrors=None):
    """MNIST handwritten digits: 60,000 train / 10,000 test, (1, 28, 28) uint8."""
    return _idx_dataset("mnist", DIGIT_CLASSES, split, data_dir, download, progress, transform, verify, mirrors)


def fashion_mnist(split="train", data_dir=None, download=True, progress=None, *, transform=None, verify=True,
                  mirrors=None):
    """Zalando's Fashion-MNIST: 60,000 train / 10,000 test, (1, 28, 28) uint8."""
    return _idx_dataset("fashion-mnist", FASHION_CLASSES, split, data_dir, download, progress, transform, verify,
                        mirrors)


def cifar10(split="train", data_dir=None, download=True, progress=None, *, transform=None, verify=True, mirrors=None):
    """CIFAR-10 (binary version): 50,000 train / 10,000 test, (3, 32, 32) uint8."""
    _check_split("cifar10", split)
    names = TRAIN_FILES if split == "train" else TEST_FILES
    found = locate("cifar10", names, data_dir, download=download, progress=progress, mirrors=mirrors, verify=verify)
    images, labels = read_cifar10([found[name] for name in names])
    return ArrayDataset(images, labels, list(CIFAR10_CLASSES), transform)


def digits(split="train", data_dir=None, download=True, progress=None, *, transform=None):
    """UCI handwritten digits bundled with minicnn, MNIST-framed: 1,438 train / 359 test, (1, 28, 28)."""
    _check_split("digits", split)
    images, labels = load_digits(split)
    return ArrayDataset(images, labels, DIGIT_CLASSES, transform)


def image_folder(split="train", data_dir=None, download=True, progress=None, *, root=None, size=None,
                 channels=None, transform=None):
    """Images in root/<class>/ (the train split only) or root/train/<class>/ and root/test/<class>/.

    size: resize to h or (h, w); channels: 1 or 3. The two splits are loaded one at a time, yet
    agree by construction, whichever is loaded first: the classes are root/train's folders (a test
    folder outside them is refused, its label would mean nothing), and a channel count or size not
    given is decided from the headers of both splits' images: 1 channel only if every image of both
    is grey, else 3; one size only if all share it, else pass size. A class folder of root/train
    (or of a flat root) with no images is refused; one in root/test may be empty or absent.
    """
    _check_split("image-folder", split)
    if root is None and data_dir is None:
        raise ValueError("image-folder needs root=FOLDER (or data_dir, --data-dir)")
    root = Path(root if root is not None else data_dir).expanduser()
    fix = ("Fix: pass root=DIR (--data-dir DIR) where DIR/<class name>/ holds images, or DIR/train/<class name>/ "
           "and DIR/test/<class name>/ for both splits.")
    if not root.is_dir():
        raise DataUnavailableError("image-folder", [f"root {root}: no such folder"], fix)
    if not (root / "train").is_dir():
        if split != "train":
            raise DataUnavailableError("image-folder", [f"{root / split}: no such folder (the class folders directly "
                                                        f"under {root} are the train split only)"], fix)
        paths, labels, classes = find_images(root)
        every = paths
    else:
        splits = {"train": find_images(root / "train")}
        classes = splits["train"][2]
        if (root / "test").is_dir():
            unknown = sorted(set(class_folders(root / "test")) - set(classes))
            if unknown:
                raise DataFormatError(f"{root / 'test'}: class folders {unknown} have no counterpart in "
                                      f"{root / 'train'}, whose folders are the classes {classes}; add them there "
                                      "or remove them")
            splits["test"] = find_images(root / "test", classes)
        elif split == "test":
            raise DataUnavailableError("image-folder", [f"{root / 'test'}: no such folder"], fix)
        paths, labels, _ = splits[split]
        every = [path for found in splits.values() for path in found[0]]
    channels, size = image_format(every, size, channels)
    return ArrayDataset(read_images(paths, size, channels), labels, classes, transform)


@hookimpl
def minicnn_register_datasets(register):
    register("mnist", mnist, input_size=(1, 28, 28), description="MNIST handwritten digits (downloaded, 60k/10k)")
    register("fashion-mnist", fashion_mnist, input_size=(1, 28, 28),
             description="Zalando's Fashion-MNIST clothing images (downloaded, 60k/10k)")
    register("cifar10", cifar10, input_size=(3, 32, 32), description="CIFAR-10 colour images (downloaded, 50k/10k)")
    register("digits", digits, input_size=(1, 28, 28),
             description="UCI handwritten digits bundled with minicnn, MNIST-framed (offline, 1438/359)")
    register("image-folder", image_folder, description="your images, one folder per class (root=DIR, Pillow)")
