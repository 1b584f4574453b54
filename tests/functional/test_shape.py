"""Reshape, transpose, indexing, concatenation, padding, flatten: values and gradients."""

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.testing import gradcheck

rng = np.random.default_rng(1)


def test_reshape_forms_and_gradient():
    x = rng.standard_normal((2, 3, 4))
    t = mc.tensor(x)
    assert t.reshape(6, 4).shape == (6, 4)
    assert t.reshape((4, -1)).shape == (4, 6)
    assert F.reshape(t, 24).shape == (24,)
    gradcheck(lambda a: a.reshape(4, 6), [x])


def test_transpose_swaps_two_axes_and_permute_reorders_all():
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(mc.tensor(x).transpose(0, 2).numpy(), x.swapaxes(0, 2))
    np.testing.assert_array_equal(mc.tensor(x).permute(2, 0, 1).numpy(), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(mc.tensor(x).T.numpy(), x.T)
    gradcheck(lambda a: a.permute(1, 2, 0) * a.transpose(0, 1).permute(0, 2, 1), [x])


@pytest.mark.parametrize(
    "index",
    [1, (slice(None), 2), (Ellipsis, slice(1, 3)), (slice(None, None, -1),), np.array([0, 0, 1]), (np.array([1, 0, 1]), np.array([2, 2, 0])), None],
    ids=["int", "column", "ellipsis", "reversed", "repeated-rows", "pairs", "newaxis"],
)
def test_indexing_values_and_gradient(index):
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(mc.tensor(x)[index].numpy(), x[index])
    gradcheck(lambda a: a[index], [x])


def test_repeated_integer_index_adds_gradients():
    x = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_indexing_with_a_tensor():
    x = mc.tensor([10.0, 20.0, 30.0])
    assert x[mc.tensor([2, 0])].numpy().tolist() == [30.0, 10.0]


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_values_and_gradients(dim):
    parts = [rng.standard_normal((2, 3, 2)) for _ in range(3)]
    out = F.cat([mc.tensor(p) for p in parts], dim)
    np.testing.assert_array_equal(out.numpy(), np.concatenate(parts, axis=dim))
    gradcheck(lambda a, b, c: F.cat([a, b, c], dim), parts)


def test_cat_only_differentiates_what_needs_it():
    a = mc.tensor([1.0], requires_grad=True)
    b = mc.tensor([2.0])
    F.cat([a, b]).sum().backward()
    assert a.grad.item() == 1.0 and b.grad is None


def test_cat_mismatch_is_explained():
    with pytest.raises(ValueError, match="differ outside dimension 1"):
        F.cat([mc.tensor(np.zeros((2, 3))), mc.tensor(np.zeros((3, 3)))], dim=1)


def test_pad_uses_pytorch_order_last_axis_first():
    x = rng.standard_normal((2, 3, 4))
    out = F.pad(mc.tensor(x), (1, 2, 0, 3), value=-1.0)
    np.testing.assert_array_equal(out.numpy(), np.pad(x, ((0, 0), (0, 3), (1, 2)), constant_values=-1.0))
    gradcheck(lambda a: F.pad(a, (1, 2, 0, 3)), [x])


def test_pad_rejects_bad_widths():
    with pytest.raises(ValueError, match="pairs"):
        F.pad(mc.tensor(np.zeros(3)), (1, 1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        F.pad(mc.tensor(np.zeros(3)), (-1, 1))


def test_flatten_defaults():
    x = mc.tensor(np.zeros((2, 3, 4, 5)))
    assert F.flatten(x).shape == (2, 60)  # functional: keeps the batch axis
    assert x.flatten().shape == (120,)  # method: everything, as in PyTorch
    assert F.flatten(x, 1, 2).shape == (2, 12, 5)
    gradcheck(F.flatten, [rng.standard_normal((2, 3, 2))])
