"""The image-folder reader, on PNG and JPEG files written here with Pillow."""

import numpy as np
import pytest
from PIL import Image

from minicnn.data.errors import DataFormatError
from minicnn.data.image_folder import find_images, read_image_folder


def save(path, pixels):
    """(H, W) pixels save as grey, (H, W, 3) as RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """cat/ holds two grey PNGs, dog/ one; plus a text file and a hidden folder to ignore."""
    root = tmp_path / "pets"
    save(root / "dog" / "a.png", np.full((4, 6), 200))
    save(root / "cat" / "b.png", np.full((4, 6), 10))
    save(root / "cat" / "a.png", np.arange(24).reshape(4, 6))
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    return root


def test_classes_sorted_files_sorted_grey_kept(folder):
    images, labels, classes = read_image_folder(folder)
    assert classes == ["cat", "dog"] and labels.tolist() == [0, 0, 1]
    assert images.shape == (3, 1, 4, 6) and images.dtype == np.uint8
    assert np.array_equal(images[0, 0], np.arange(24).reshape(4, 6)) and images[2].min() == 200


def test_rgb_and_resize(folder):
    save(folder / "dog" / "c.png", np.zeros((8, 8, 3)) + [255, 0, 0])
    with pytest.raises(DataFormatError, match="different sizes"):
        read_image_folder(folder)
    images, labels, _ = read_image_folder(folder, size=(5, 3))
    assert images.shape == (4, 3, 5, 3)
    assert images[3, :, 2, 1].tolist() == [255, 0, 0] and (images[2] == 200).all()
    assert read_image_folder(folder, size=4, channels=1)[0].shape == (4, 1, 4, 4)


def test_jpeg_is_read(tmp_path):
    save(tmp_path / "x" / "one.jpg", np.full((8, 8, 3), 128))
    images, _, _ = read_image_folder(tmp_path)
    assert images.shape == (1, 3, 8, 8) and abs(int(images.mean()) - 128) <= 2


def test_given_classes_fix_the_labels(folder):
    _, labels, classes = find_images(folder, classes=["dog", "cat", "bird"])
    assert classes == ["dog", "cat", "bird"] and labels.tolist() == [0, 1, 1]
    with pytest.raises(DataFormatError, match=r"class folders \['dog'\] are not among"):
        find_images(folder, classes=["cat"])


def test_errors_name_the_folder_or_file(tmp_path, folder):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="no images found"):
        read_image_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image_folder(tmp_path / "absent")
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataFormatError, match="broken.png: not a readable image"):
        read_image_folder(folder)
    with pytest.raises(ValueError, match="channels must be 1, 3 or None"):
        read_image_folder(folder, channels=2)
