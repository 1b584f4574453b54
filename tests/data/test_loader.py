"""DataLoader: coverage per epoch, reproducible shuffles and augmentation, drop_last, scaling, fallback,
and batches as Tensors on a device."""

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.data import ArrayDataset, DataLoader, Dataset
from minicnn.data.transforms import RandomHorizontalFlip


def numbered(n=10, dtype=np.uint8, transform=None):
    """Image i is filled with the value i; its label is i % 3."""
    images = np.broadcast_to(np.arange(n, dtype=dtype)[:, None, None, None], (n, 1, 2, 3)).copy()
    return ArrayDataset(images, np.arange(n) % 3, ["a", "b", "c"], transform)


def ids(batch_images):
    return np.rint(batch_images[:, 0, 0, 0] * 255).astype(int).tolist()


def test_one_epoch_covers_every_sample_once_in_order():
    loader = DataLoader(numbered(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(labels) for _, labels in batches] == [4, 4, 2]
    images, labels = batches[0]
    assert images.dtype == np.float32 and images.shape == (4, 1, 2, 3) and labels.dtype == np.int64
    assert np.allclose(images[1], 1 / 255) and labels.tolist() == [0, 1, 2, 0]
    assert sum((ids(x) for x, _ in batches), []) == list(range(10))


def test_drop_last():
    loader = DataLoader(numbered(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]


def test_shuffle_is_a_permutation_per_epoch_reproducible_from_seed_and_epoch():
    loader = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=3)
    first, second = (sum((ids(x) for x, _ in loader), []) for _ in range(2))
    assert sorted(first) == sorted(second) == list(range(50)) and first != second
    assert first == np.random.default_rng([3, 0]).permutation(50).tolist()
    resumed = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=3)
    resumed.set_epoch(1)
    assert sum((ids(x) for x, _ in resumed), []) == second and resumed.epoch == 2


def test_augmentation_is_reproducible_per_epoch_and_batch():
    data = numbered(64, dtype=np.float32, transform=RandomHorizontalFlip())
    data.images[:, 0, 0, :] = [0, 1, 2]
    run = lambda loader: [x.copy() for x, _ in loader]  # noqa: E731
    loader = DataLoader(data, batch_size=16, seed=7)
    epoch0, epoch1 = run(loader), run(loader)
    assert not all(np.array_equal(a, b) for a, b in zip(epoch0, epoch1))
    again = DataLoader(data, batch_size=16, seed=7)
    again.set_epoch(1)
    assert all(np.array_equal(a, b) for a, b in zip(run(again), epoch1))
    flipped = np.concatenate([x[:, 0, 0, 0] == 2 for x in epoch0])
    assert 0.25 < flipped.mean() < 0.75


def test_seed_none_follows_manual_seed():
    mc.manual_seed(11)
    a = DataLoader(numbered(), shuffle=True).seed
    mc.manual_seed(11)
    assert DataLoader(numbered(), shuffle=True).seed == a


def test_float_images_are_not_rescaled_and_the_dataset_is_not_modified():
    data = numbered(6, dtype=np.float32)
    images, _ = next(iter(DataLoader(data, batch_size=6)))
    images += 1
    assert images[:, 0, 0, 0].tolist() == [1, 2, 3, 4, 5, 6] and data.images.max() == 5


class Squares(Dataset):
    """A generic dataset: (H, W) uint8 images, labels from __getitem__, a transform attribute."""

    classes = ["even", "odd"]

    def __init__(self, transform=None):
        self.transform = transform

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full((2, 2), i * i, dtype=np.uint8), i % 2


def test_a_generic_dataset_is_stacked_and_scaled():
    batches = list(DataLoader(Squares(), batch_size=2))
    images, labels = batches[0]
    assert images.shape == (2, 1, 2, 2) and images.dtype == np.float32 and np.allclose(images[1], 1 / 255)
    assert labels.tolist() == [0, 1] and len(batches) == 3 and Squares().num_classes == 2
    flipped = list(DataLoader(Squares(transform=lambda x, rng: -x), batch_size=5))[0][0]
    assert flipped.max() <= 0


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(numbered(), batch_size=0)


def test_as_tensors_yields_the_same_batches_as_tensors():
    arrays = list(DataLoader(numbered(10), batch_size=4, shuffle=True, seed=2))
    tensors = list(DataLoader(numbered(10), batch_size=4, shuffle=True, seed=2, as_tensors=True))
    assert len(tensors) == len(arrays) == 3
    for (images, labels), (x, y) in zip(tensors, arrays):
        assert isinstance(images, mc.Tensor) and isinstance(labels, mc.Tensor)
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.device == labels.device == mc.device("cpu") and not images.requires_grad
        np.testing.assert_array_equal(images.numpy(), x)
        np.testing.assert_array_equal(labels.numpy(), y)


def test_tensor_batches_drive_a_training_step_written_the_pytorch_way():
    mc.manual_seed(0)
    model = nn.Linear(6, 3)
    for images, labels in DataLoader(numbered(6), batch_size=3, as_tensors=True, device="cpu"):
        loss = F.cross_entropy(model(images.view(images.size(0), -1)), labels)
        loss.backward()
    assert model.weight.grad is not None and model.weight.grad.shape == (3, 6)


def test_a_device_without_as_tensors_is_refused_saying_what_to_add():
    with pytest.raises(ValueError, match="pass as_tensors=True as well"):
        DataLoader(numbered(), batch_size=2, device="cpu")


def test_a_gpu_that_is_not_there_is_reported_when_the_loader_is_made():
    if mc.gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(mc.DeviceError, match="no usable CUDA GPU|CuPy is not installed"):
        DataLoader(numbered(), batch_size=2, as_tensors=True, device="cuda")


def test_repr_says_when_batches_are_tensors():
    assert "as_tensors" not in repr(DataLoader(numbered(), batch_size=2))
    assert repr(DataLoader(numbered(), batch_size=2, seed=1, as_tensors=True)).endswith(
        "epoch=0, as_tensors=True, device='cpu')")


@pytest.mark.gpu
@pytest.mark.skipif(not mc.gpu_available(), reason="needs an NVIDIA GPU and CuPy")
def test_tensor_batches_on_the_gpu():
    images, labels = next(iter(DataLoader(numbered(4), batch_size=4, as_tensors=True, device="cuda")))
    assert images.device == labels.device == mc.device("cuda:0") and labels.dtype == np.int64
    assert ids(images.numpy()) == [0, 1, 2, 3] and labels.numpy().tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize("ranks", [2, 3])
def test_the_parts_of_every_batch_put_together_are_the_whole_batch_in_order(ranks):
    """Data-parallel ranks: each takes a contiguous slice (numpy.array_split) of each global batch of the
    one shared shuffle, so the ranks together see what one loader sees; a part of a final batch
    smaller than the ranks may be empty, and batch_size_of gives the whole batch's size."""
    whole = DataLoader(numbered(23), batch_size=8, shuffle=True, seed=5)
    parts = [DataLoader(numbered(23), batch_size=8, shuffle=True, seed=5, part=(rank, ranks)) for rank in range(ranks)]
    for epoch in range(2):
        expected = [ids(x) for x, _ in whole]
        got = [[ids(x) for x, _ in part] for part in parts]
        assert all(len(part) == len(whole) == 3 for part in parts)
        for b, batch in enumerate(expected):
            assert sum((got[rank][b] for rank in range(ranks)), []) == batch
            sizes = [len(got[rank][b]) for rank in range(ranks)]
            assert max(sizes) - min(sizes) <= 1 and sum(sizes) == whole.batch_size_of(b)
    assert [whole.batch_size_of(b) for b in range(3)] == [8, 8, 7]


def test_a_part_draws_its_own_augmentation_from_seed_epoch_batch_and_rank():
    data = numbered(16, dtype=np.float32, transform=RandomHorizontalFlip())
    data.images[:, 0, 0, :] = [0, 1, 2]
    first, second = (next(iter(DataLoader(data, batch_size=16, seed=7, part=(rank, 2))))[0] for rank in range(2))
    expected = [RandomHorizontalFlip()(data.images[8 * r:8 * r + 8].copy(), np.random.default_rng([7, 0, 0, r]))
                for r in range(2)]
    assert np.array_equal(first, expected[0]) and np.array_equal(second, expected[1])


@pytest.mark.parametrize("part", [(2, 2), (-1, 2), (0, 0)])
def test_a_part_that_is_no_rank_of_the_job_is_refused(part):
    with pytest.raises(ValueError, match="part must be"):
        DataLoader(numbered(10), batch_size=4, part=part)
