"""The image-folder reader, on PNG and JPEG files written here with Pillow."""

import io
import re
import zlib

import numpy as np
import pytest
from PIL import Image

from minicnn.data.errors import DataFormatError
from minicnn.data.image_folder import find_images, image_format, read_image, read_image_folder


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
    different = f"images of different sizes: {folder / 'cat' / 'a.png'} is 4x6, {folder / 'dog' / 'c.png'} is 8x8"
    with pytest.raises(DataFormatError, match=re.escape(different)):
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
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="empty: no images found"):
        read_image_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image_folder(tmp_path / "absent")
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataFormatError, match="broken.png: not a readable image"):
        read_image_folder(folder)
    with pytest.raises(ValueError, match="channels must be 1, 3 or None"):
        read_image_folder(folder, channels=2)


def test_an_empty_class_folder_is_refused_unless_the_classes_are_given(folder):
    (folder / "bird").mkdir()
    (folder / "bird" / "photo.heic").write_bytes(b"not a format we read")
    with pytest.raises(DataFormatError, match=re.escape(f"{folder / 'bird'}: class folder with no images (1 other "
                                                        "file, e.g. photo.heic); add images or remove the folder")):
        read_image_folder(folder)
    _, labels, classes = find_images(folder, classes=["bird", "cat", "dog"])
    assert classes == ["bird", "cat", "dog"] and labels.tolist() == [1, 1, 2]


def test_hidden_files_are_ignored(folder):
    (folder / "cat" / "._a.png").write_bytes(b"\x00\x05\x16\x07 macOS AppleDouble metadata")
    paths, _, _ = find_images(folder)
    assert [p.name for p in paths] == ["a.png", "b.png", "a.png"]


def png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def forged_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header (IHDR, with a valid CRC) claims width x height pixels."""
    data = bytearray(png_bytes(np.zeros((1, 1))))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


UNREADABLE = {
    "zero bytes": b"",
    "text": b"just some notes, not a picture",
    "truncated": png_bytes(np.arange(64 * 64).reshape(64, 64) % 251)[:200],
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_an_unreadable_image_is_named(folder, case):
    path = folder / "cat" / "bad.png"
    path.write_bytes(UNREADABLE[case])
    for read in (lambda: read_image_folder(folder, size=4), lambda: read_image(path, (4, 4), 1)):
        with pytest.raises(DataFormatError, match=re.escape(f"{path}: not a readable image (")):
            read()


def test_a_decompression_bomb_is_named_with_its_size(folder):
    path = folder / "dog" / "huge.png"
    path.write_bytes(forged_png(100_000, 100_000))
    expected = re.escape(f"{path}: too large to decode safely (") + r".*10000000000 pixels.*" + re.escape(
        "); resize the file, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it")
    for read in (lambda: read_image_folder(folder, size=4), lambda: read_image(path, (4, 4), 1)):
        with pytest.raises(DataFormatError, match=expected):
            read()


def test_the_pillow_limit_is_the_one_in_force(folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5)  # 4x6 = 24 pixels: more than twice the limit
    with pytest.raises(DataFormatError, match="a.png: too large to decode safely .*24 pixels"):
        read_image_folder(folder)


def test_one_format_for_files_from_several_folders(folder, tmp_path):
    save(tmp_path / "other" / "rgb.png", np.zeros((4, 6, 3)))
    grey = find_images(folder)[0]
    assert image_format(grey) == (1, (4, 6))
    assert image_format(grey + [tmp_path / "other" / "rgb.png"]) == (3, (4, 6))
    assert image_format(grey, size=3, channels=3) == (3, (3, 3))
