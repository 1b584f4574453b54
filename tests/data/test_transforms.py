"""Batch transforms against hand computations."""

import numpy as np
import pytest

from minicnn.data.transforms import Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip


def batch(b=4, c=2, h=3, w=5):
    return np.arange(b * c * h * w, dtype=np.float32).reshape(b, c, h, w)


def test_normalize_per_channel_and_scalar():
    x = batch(b=1, c=2, h=1, w=2)  # channel 0: [0, 1], channel 1: [2, 3]
    out = Normalize([1.0, 2.0], [2.0, 0.5])(x)
    assert out.dtype == np.float32 and out.tolist() == [[[[-0.5, 0.0]], [[0.0, 2.0]]]]
    assert Normalize(1.0, 2.0)(x).tolist() == [[[[-0.5, 0.0]], [[0.5, 1.0]]]]
    with pytest.raises(ValueError, match="3 mean values for a batch of 2 channels"):
        Normalize([0, 0, 0], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(0, 0)


def test_pad_sides_like_torchvision():
    x = batch(b=1, c=1, h=2, w=2)
    assert Pad(1)(x).shape == (1, 1, 4, 4)
    out = Pad((1, 2), fill=-1)(x)  # left/right 1, top/bottom 2
    assert out.shape == (1, 1, 6, 4) and out[0, 0, 2:4, 1:3].tolist() == [[0, 1], [2, 3]] and out[0, 0, 0, 0] == -1
    out = Pad((1, 0, 2, 3))(x)  # left, top, right, bottom
    assert out.shape == (1, 1, 5, 5) and out[0, 0, 0, 1:3].tolist() == [0, 1]
    with pytest.raises(ValueError, match="padding must be"):
        Pad((1, 2, 3))


def test_random_crop_takes_each_window_at_its_own_offset():
    x = batch(b=64, c=3, h=8, w=8)
    out = RandomCrop(5)(x, np.random.default_rng(0))
    assert out.shape == (64, 3, 5, 5)
    rng = np.random.default_rng(0)
    top, left = rng.integers(0, 4, 64), rng.integers(0, 4, 64)
    for i in range(64):
        assert np.array_equal(out[i], x[i, :, top[i]:top[i] + 5, left[i]:left[i] + 5])
    assert len(set(zip(top, left))) > 8


def test_pad_then_crop_keeps_the_size_and_shifts_by_at_most_the_padding():
    x = np.ones((200, 1, 6, 6), dtype=np.float32)
    out = RandomCrop(6, padding=2)(x, np.random.default_rng(1))
    assert out.shape == (200, 1, 6, 6)
    zero_rows = (out.sum(axis=3) == 0).sum(axis=(1, 2))
    assert zero_rows.max() == 2 and zero_rows.min() == 0
    with pytest.raises(ValueError, match="crop 9x9 is larger than the"):
        RandomCrop(9)(x)


def test_flip_mirrors_about_p_of_the_images():
    x = batch(b=2000, c=1, h=1, w=3)
    out = RandomHorizontalFlip(0.3)(x, np.random.default_rng(2))
    flipped = np.all(out == x[:, :, :, ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped ^ kept) and abs(flipped.mean() - 0.3) < 0.04
    assert np.array_equal(RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    assert np.array_equal(RandomHorizontalFlip(0.0)(x), x)


def test_compose_is_reproducible_with_the_same_generator():
    x = batch(b=16, c=3, h=8, w=8)
    augment = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), Normalize([1, 2, 3], [2, 2, 2])])
    a, b = augment(x, np.random.default_rng(5)), augment(x, np.random.default_rng(5))
    assert np.array_equal(a, b) and a.shape == x.shape and a.dtype == np.float32
    assert not np.array_equal(a, augment(x, np.random.default_rng(6)))


def test_a_single_image_is_refused():
    with pytest.raises(ValueError, match=r"expects a batch \(B, C, H, W\), got shape \(3, 8, 8\)"):
        RandomHorizontalFlip()(np.zeros((3, 8, 8)))
