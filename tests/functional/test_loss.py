"""cross_entropy and mse_loss against float64 NumPy references, hand values and finite differences;
where cross_entropy checks host targets for GPU logits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
import minicnn.functional.loss as loss_module
from minicnn.testing import gradcheck


def reference_cross_entropy(logits, target):
    """-mean over rows of log softmax(logits)[target], in float64 with the log-sum-exp shift."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    log_probs = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(target)), target].mean()


def logits_and_target(n, c, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)) * scale, rng.integers(0, c, size=n)


# --- cross_entropy --------------------------------------------------------------------------------

@pytest.mark.parametrize("n, c", [(1, 2), (1, 10), (8, 5), (32, 10)])
def test_cross_entropy_matches_reference(n, c):
    logits, target = logits_and_target(n, c, seed=n + c)
    loss = F.cross_entropy(mc.tensor(logits), target)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(reference_cross_entropy(logits, target), rel=1e-12)


def test_cross_entropy_float32_matches_float64_reference():
    logits, target = logits_and_target(16, 7, seed=1)
    loss = F.cross_entropy(mc.tensor(logits.astype(np.float32)), target)
    assert loss.item() == pytest.approx(reference_cross_entropy(logits.astype(np.float32), target), rel=1e-5)


def test_cross_entropy_hand_values():
    # uniform logits over C classes: log C
    assert F.cross_entropy(mc.tensor(np.zeros((3, 4))), np.array([0, 1, 3])).item() == pytest.approx(np.log(4))
    # softmax([0, log 3]) = [1/4, 3/4]
    logits = mc.tensor(np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]]))
    assert F.cross_entropy(logits, np.array([1, 0])).item() == pytest.approx((-np.log(0.75) - np.log(0.25)) / 2)


def test_cross_entropy_accepts_target_as_tensor_or_list():
    logits, target = logits_and_target(5, 3, seed=2)
    expected = reference_cross_entropy(logits, target)
    assert F.cross_entropy(mc.tensor(logits), mc.tensor(target)).item() == pytest.approx(expected, rel=1e-12)
    assert F.cross_entropy(mc.tensor(logits), target.tolist()).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    logits, target = logits_and_target(6, 4, seed=3, scale=1e4)
    logits = logits.astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        x = mc.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(x, target)
        loss.backward()
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(reference_cross_entropy(logits, target), rel=1e-5)
    assert np.isfinite(x.grad.numpy()).all()


def test_cross_entropy_confident_correct_and_wrong_predictions():
    logits = mc.tensor(np.array([[1e4, 0.0, 0.0]]))
    assert F.cross_entropy(logits, np.array([0])).item() == pytest.approx(0.0, abs=1e-12)
    assert F.cross_entropy(logits, np.array([2])).item() == pytest.approx(1e4, rel=1e-12)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    logits, target = logits_and_target(4, 3, seed=4)
    x = mc.tensor(logits, requires_grad=True)
    F.cross_entropy(x, target).backward()
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(3)[target]
    np.testing.assert_allclose(x.grad.numpy(), (probs - onehot) / 4, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n, c", [(1, 3), (5, 4), (7, 10)])
def test_cross_entropy_gradcheck(n, c):
    logits, target = logits_and_target(n, c, seed=5 + n)
    gradcheck(F.cross_entropy, [logits, target])


def test_cross_entropy_gradcheck_scaled_upstream():
    logits, target = logits_and_target(3, 4, seed=6)
    gradcheck(lambda z: F.cross_entropy(z, target) * 3.0, [logits])


@pytest.mark.parametrize("target", [[0, 3], [-1, 0], [5, 1]])
def test_cross_entropy_out_of_range_target_names_range_and_classes(target):
    logits = mc.tensor(np.zeros((2, 3)))
    low, high = min(target), max(target)
    with pytest.raises(ValueError, match=rf"cross_entropy.*\[{low}, {high}\].*3 classes"):
        F.cross_entropy(logits, np.array(target))


class FakeGpuArray(np.ndarray):
    """An array whose type says it is CuPy's, on GPU 1: all that backend.device_of reads."""

    device = SimpleNamespace(id=1)


FakeGpuArray.__module__ = "cupy"


class Copied(Exception):
    """Raised by the stand-in for the copy to the GPU, which cannot run here."""


@pytest.fixture
def copies_to_the_gpu(monkeypatch):
    """Records (array, device) of each copy cross_entropy makes, then stops it: no GPU here."""
    copies = []

    def record(array, target):
        copies.append((array, target))
        raise Copied

    monkeypatch.setattr(loss_module, "to_device", record)
    return copies


def test_host_targets_for_gpu_logits_are_checked_on_the_host_before_any_copy(copies_to_the_gpu):
    logits = mc.Tensor(np.zeros((2, 3)).view(FakeGpuArray))
    with pytest.raises(ValueError, match=r"cross_entropy: targets range over \[0, 7\] but logits have 3 classes"):
        F.cross_entropy(logits, np.array([0, 7]))
    assert copies_to_the_gpu == []


def test_host_targets_for_gpu_logits_are_copied_to_their_device_once(copies_to_the_gpu):
    target = np.array([2, 0])
    with pytest.raises(Copied):
        F.cross_entropy(mc.Tensor(np.zeros((2, 3)).view(FakeGpuArray)), target)
    assert len(copies_to_the_gpu) == 1
    array, device = copies_to_the_gpu[0]
    assert array is target and device == mc.device("cuda:1")


@pytest.mark.parametrize("target", [np.array([0.0, 1.0]), np.array([0.5, 1.0], dtype=np.float32)])
def test_cross_entropy_rejects_float_targets(target):
    with pytest.raises(TypeError, match=r"cross_entropy.*integer"):
        F.cross_entropy(mc.tensor(np.zeros((2, 3))), target)


@pytest.mark.parametrize("logits_shape", [(6,), (2, 3, 4)])
def test_cross_entropy_rejects_logits_not_2d(logits_shape):
    with pytest.raises(ValueError, match=r"cross_entropy.*\(N, C\)"):
        F.cross_entropy(mc.tensor(np.zeros(logits_shape)), np.zeros(2, dtype=np.int64))


@pytest.mark.parametrize("target", [np.zeros(3, dtype=np.int64), np.zeros((2, 1), dtype=np.int64), np.array(0)])
def test_cross_entropy_rejects_target_of_wrong_shape(target):
    with pytest.raises(ValueError, match=r"cross_entropy.*target"):
        F.cross_entropy(mc.tensor(np.zeros((2, 3))), target)


# --- mse_loss -------------------------------------------------------------------------------------

def pair_of(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape)


def test_mse_loss_reductions():
    a, b = pair_of((3, 4, 2))
    squared = (a - b) ** 2
    assert F.mse_loss(mc.tensor(a), mc.tensor(b)).item() == pytest.approx(squared.mean(), rel=1e-12)
    assert F.mse_loss(mc.tensor(a), mc.tensor(b), reduction="mean").item() == pytest.approx(squared.mean(), rel=1e-12)
    assert F.mse_loss(mc.tensor(a), mc.tensor(b), reduction="sum").item() == pytest.approx(squared.sum(), rel=1e-12)
    none = F.mse_loss(mc.tensor(a), mc.tensor(b), reduction="none")
    assert none.shape == (3, 4, 2)
    np.testing.assert_allclose(none.numpy(), squared, rtol=1e-12)


def test_mse_loss_hand_value():
    loss = F.mse_loss(mc.tensor([1.0, 2.0, 3.0]), mc.tensor([1.0, 0.0, 6.0]))
    assert loss.item() == pytest.approx((0 + 4 + 9) / 3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_gradcheck_both_arguments(reduction):
    a, b = pair_of((3, 5), seed=1)
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), [a, b])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_loss_gradient_hand_formula(reduction):
    a, b = pair_of((4, 2), seed=2)
    ta, tb = mc.tensor(a, requires_grad=True), mc.tensor(b, requires_grad=True)
    F.mse_loss(ta, tb, reduction=reduction).backward()
    scale = 2 / a.size if reduction == "mean" else 2
    np.testing.assert_allclose(ta.grad.numpy(), scale * (a - b), rtol=1e-12)
    np.testing.assert_allclose(tb.grad.numpy(), -scale * (a - b), rtol=1e-12)


def test_mse_loss_gradient_only_to_the_argument_that_needs_it():
    a, b = pair_of((3,), seed=3)
    ta, tb = mc.tensor(a, requires_grad=True), mc.tensor(b)
    F.mse_loss(ta, tb, reduction="sum").backward()
    np.testing.assert_allclose(ta.grad.numpy(), 2 * (a - b), rtol=1e-12)
    assert tb.grad is None


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (4, 3)), ((3, 4), (3, 4, 1)), ((5,), (1, 5))])
def test_mse_loss_shape_mismatch_raises(shape_a, shape_b):
    with pytest.raises(ValueError, match=r"mse_loss.*must have one shape"):
        F.mse_loss(mc.tensor(np.zeros(shape_a)), mc.tensor(np.zeros(shape_b)))


def test_mse_loss_unknown_reduction_raises():
    with pytest.raises(ValueError, match=r"mse_loss.*reduction"):
        F.mse_loss(mc.tensor(np.zeros(2)), mc.tensor(np.zeros(2)), reduction="max")
