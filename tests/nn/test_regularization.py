"""BatchNorm1d/2d, LocalResponseNorm and Dropout: PyTorch's signatures and state, training against
evaluation behaviour, NumPy formulas, finite differences, and torch's layers."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.testing import gradcheck

EPS = 1e-5


def sample(shape, seed=0, loc=1.5, scale=2.0, dtype=np.float64):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + loc).astype(dtype)


def axes_of(x):
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v, ndim):
    return np.reshape(v, (1, -1) + (1,) * (ndim - 2))


def reference_batch_norm(x, mean, var, weight, bias):
    return (x - per_channel(mean, x.ndim)) / np.sqrt(per_channel(var, x.ndim) + EPS) * per_channel(
        weight, x.ndim
    ) + per_channel(bias, x.ndim)


def defaults(cls):
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


# --- batch norm: construction ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [nn.BatchNorm1d, nn.BatchNorm2d])
def test_batch_norm_signature_is_torchs(cls):
    assert defaults(cls) == {
        "num_features": inspect.Parameter.empty, "eps": 1e-5, "momentum": 0.1, "affine": True,
        "track_running_stats": True,
    }


def test_batch_norm_signature_is_a_prefix_of_torchs():
    torch = pytest.importorskip("torch")
    for name in ("BatchNorm1d", "BatchNorm2d"):
        own = list(defaults(getattr(nn, name)).items())
        assert list(defaults(getattr(torch.nn, name)).items())[: len(own)] == own


def test_batch_norm_initial_state():
    norm = nn.BatchNorm2d(4)
    assert list(norm.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [name for name, _ in norm.named_parameters()] == ["weight", "bias"]
    assert [name for name, _ in norm.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    state = norm.state_dict()
    np.testing.assert_array_equal(state["weight"], np.ones(4))
    np.testing.assert_array_equal(state["bias"], np.zeros(4))
    np.testing.assert_array_equal(state["running_mean"], np.zeros(4))
    np.testing.assert_array_equal(state["running_var"], np.ones(4))
    assert state["num_batches_tracked"].shape == () and state["num_batches_tracked"] == 0
    assert state["num_batches_tracked"].dtype == np.int64 and state["running_mean"].dtype == np.float32
    assert norm.eps == 1e-5 and norm.momentum == 0.1 and norm.num_features == 4


def test_batch_norm_without_affine_or_running_stats():
    plain = nn.BatchNorm2d(3, affine=False)
    assert list(plain.parameters()) == [] and plain.weight is None and plain.bias is None
    assert list(plain.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    stateless = nn.BatchNorm2d(3, track_running_stats=False)
    assert list(stateless.state_dict()) == ["weight", "bias"]
    assert stateless.running_mean is None and stateless.running_var is None


def test_batch_norm_state_names_match_torch():
    torch = pytest.importorskip("torch")
    for kwargs in ({}, dict(affine=False), dict(track_running_stats=False)):
        assert list(nn.BatchNorm1d(3, **kwargs).state_dict()) == list(torch.nn.BatchNorm1d(3, **kwargs).state_dict())


# --- batch norm: training and evaluation ----------------------------------------------------------


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (8, 3)), (nn.BatchNorm1d, (4, 3, 5)), (nn.BatchNorm2d, (4, 3, 5, 6))])
def test_batch_norm_training_uses_batch_statistics_and_updates_running_ones(cls, shape):
    c = shape[1]
    norm = cls(c, momentum=0.2).double()
    weight, bias = sample(c, seed=1), sample(c, seed=2)
    norm.load_state_dict({**norm.state_dict(), "weight": weight, "bias": bias})
    running_mean, running_var = np.zeros(c), np.ones(c)
    for step in range(1, 4):
        x = sample(shape, seed=10 + step)
        out = norm(mc.tensor(x)).numpy()
        axes = axes_of(x)
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        np.testing.assert_allclose(out, reference_batch_norm(x, mean, var, weight, bias), rtol=1e-10, atol=1e-12)
        n = x.size // c
        running_mean = 0.8 * running_mean + 0.2 * mean
        running_var = 0.8 * running_var + 0.2 * var * n / (n - 1)
        np.testing.assert_allclose(norm.running_mean.numpy(), running_mean, rtol=1e-12)
        np.testing.assert_allclose(norm.running_var.numpy(), running_var, rtol=1e-12)
        assert norm.num_batches_tracked.item() == step


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (8, 3)), (nn.BatchNorm2d, (4, 3, 5, 6))])
def test_batch_norm_eval_uses_running_statistics_and_leaves_them(cls, shape):
    c = shape[1]
    norm = cls(c).double()
    state = {
        "weight": sample(c, seed=1), "bias": sample(c, seed=2), "running_mean": sample(c, seed=3),
        "running_var": sample(c, seed=4) ** 2 + 0.1, "num_batches_tracked": np.array(5),
    }
    norm.load_state_dict(state)
    norm.eval()
    x = sample(shape, seed=5)
    out = norm(mc.tensor(x)).numpy()
    expected = reference_batch_norm(x, state["running_mean"], state["running_var"], state["weight"], state["bias"])
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    for name, value in norm.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=f"{name} changed in eval")


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval():
    norm = nn.BatchNorm2d(3, track_running_stats=False).double().eval()
    x = sample((4, 3, 2, 2), seed=6)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(norm(mc.tensor(x)).numpy(), reference_batch_norm(x, mean, var, np.ones(3), np.zeros(3)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{}, dict(affine=False), dict(track_running_stats=False), dict(momentum=0.5, eps=1e-3)])
@pytest.mark.parametrize("name, shape", [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (3, 4, 5)), ("BatchNorm2d", (3, 4, 5, 2))])
def test_batch_norm_matches_torch_over_training_steps_and_eval(name, shape, kwargs):
    torch = pytest.importorskip("torch")
    reference = getattr(torch.nn, name)(shape[1], **kwargs).double()
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.from_numpy(sample(p.shape, seed=7)))
    norm = getattr(nn, name)(shape[1], **kwargs).double()
    norm.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    for step, mode in enumerate(["train", "train", "eval", "train", "eval"]):
        getattr(reference, mode)(), getattr(norm, mode)()
        x = sample(shape, seed=20 + step)
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(norm(mc.tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-10, err_msg=f"step {step}")
        for key, value in reference.state_dict().items():
            np.testing.assert_allclose(norm.state_dict()[key], value.numpy(), rtol=1e-10, err_msg=f"{key}, step {step}")


@pytest.mark.parametrize("cls, shape, dims", [
    (nn.BatchNorm2d, (2, 3, 4), "4"), (nn.BatchNorm2d, (2, 3), "4"), (nn.BatchNorm1d, (2, 3, 4, 4), "2 or 3"),
])
def test_batch_norm_wrong_input_rank_is_an_error(cls, shape, dims):
    norm = cls(3)
    message = re.escape(f"{cls.__name__}: input must have {dims} dimensions") + ".*" + re.escape(str(shape))
    with pytest.raises(ValueError, match=message):
        norm(mc.tensor(np.ones(shape, dtype=np.float32)))
    assert norm.num_batches_tracked.item() == 0


def test_batch_norm_wrong_channel_count_is_an_error():
    norm = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): input has 4 channels"):
        norm(mc.tensor(np.ones((2, 4, 3, 3), dtype=np.float32)))
    assert norm.num_batches_tracked.item() == 0


# --- batch norm: gradients ------------------------------------------------------------------------


def test_batch_norm_training_gradcheck_wrt_input():
    norm = nn.BatchNorm2d(3).double()
    norm.load_state_dict({**norm.state_dict(), "weight": sample(3, seed=1), "bias": sample(3, seed=2)})
    assert gradcheck(norm, [sample((3, 3, 2, 3), seed=8)])


def test_batch_norm_eval_gradcheck_wrt_input():
    norm = nn.BatchNorm1d(3).double()
    norm.load_state_dict({**norm.state_dict(), "weight": sample(3, seed=1), "running_var": sample(3, seed=3) ** 2})
    assert gradcheck(norm.eval(), [sample((4, 3), seed=9)])


def test_batch_norm2d_training_gradients_match_torch():
    torch = pytest.importorskip("torch")
    reference = torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(sample(3, seed=1)))
        reference.bias.copy_(torch.from_numpy(sample(3, seed=2)))
    norm = nn.BatchNorm2d(3).double()
    norm.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})

    x, upstream = sample((4, 3, 5, 5), seed=10), sample((4, 3, 5, 5), seed=11, loc=0.0)
    mine = mc.tensor(x, requires_grad=True)
    theirs = torch.from_numpy(x).requires_grad_()
    norm(mine).backward(upstream)
    reference(theirs).backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(norm.weight.grad.numpy(), reference.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(norm.bias.grad.numpy(), reference.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_batch_norm2d_parameter_gradients_hand_formula():
    """dL/dbias = Σ g and dL/dweight = Σ g * x_hat over (N, H, W), for any upstream g."""
    norm = nn.BatchNorm2d(2).double()
    x, g = sample((3, 2, 2, 2), seed=12), sample((3, 2, 2, 2), seed=13, loc=0.0)
    norm(mc.tensor(x)).backward(g)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    x_hat = reference_batch_norm(x, mean, var, np.ones(2), np.zeros(2))
    np.testing.assert_allclose(norm.bias.grad.numpy(), g.sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(norm.weight.grad.numpy(), (g * x_hat).sum(axis=(0, 2, 3)), rtol=1e-10)


# --- local response norm --------------------------------------------------------------------------


def reference_lrn(x, size, alpha, beta, k):
    """PyTorch's documented rule, one channel at a time: the window c - size//2 .. c + (size-1)//2."""
    out = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels, c + (size - 1) // 2 + 1)
        s = k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, c] = x[:, c] / s**beta
    return out


def test_local_response_norm_signature_is_torchs():
    assert defaults(nn.LocalResponseNorm) == {"size": inspect.Parameter.empty, "alpha": 1e-4, "beta": 0.75, "k": 1.0}
    torch = pytest.importorskip("torch")
    assert defaults(torch.nn.LocalResponseNorm) == defaults(nn.LocalResponseNorm)


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (2, 0.5, 0.6, 1.0), (3, 1.0, 1.0, 0.5)])
def test_local_response_norm_formula_and_functional(size, alpha, beta, k):
    x = sample((2, 6, 3, 3), seed=14, loc=0.0)
    layer = nn.LocalResponseNorm(size, alpha, beta, k)
    out = layer(mc.tensor(x)).numpy()
    np.testing.assert_allclose(out, reference_lrn(x, size, alpha, beta, k), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out, F.local_response_norm(mc.tensor(x), size, alpha, beta, k).numpy())
    assert list(layer.state_dict()) == []


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (2, 0.5, 0.6, 1.0)])
def test_local_response_norm_matches_torch(size, alpha, beta, k):
    torch = pytest.importorskip("torch")
    x = sample((2, 6, 3, 4), seed=15, loc=0.0)
    expected = torch.nn.LocalResponseNorm(size, alpha, beta, k)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(nn.LocalResponseNorm(size, alpha, beta, k)(mc.tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_local_response_norm_gradcheck():
    assert gradcheck(nn.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.0), [sample((2, 5, 2, 2), seed=16, loc=0.0)])


# --- dropout --------------------------------------------------------------------------------------


def test_dropout_defaults_and_validation():
    assert defaults(nn.Dropout) == {"p": 0.5, "inplace": False}
    assert nn.Dropout().p == 0.5 and repr(nn.Dropout(0.2)) == "Dropout(p=0.2)"
    nn.Dropout(0.3, inplace=True)
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="Dropout: p must be a number between 0 and 1, got"):
            nn.Dropout(p)


def test_dropout_is_the_identity_in_eval():
    x = sample((50, 40), seed=17, dtype=np.float32)
    layer = nn.Dropout(0.7).eval()
    np.testing.assert_array_equal(layer(mc.tensor(x)).numpy(), x)


def test_dropout_with_p_zero_is_the_identity_in_training():
    x = sample((20, 10), seed=18, dtype=np.float32)
    np.testing.assert_array_equal(nn.Dropout(0.0)(mc.tensor(x)).numpy(), x)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_in_training_zeros_a_fraction_p_and_scales_the_rest(p):
    mc.manual_seed(0)
    x = np.abs(sample((200, 500), seed=19, dtype=np.float32)) + 0.1
    out = nn.Dropout(p)(mc.tensor(x)).numpy()
    dropped = out == 0
    n = x.size
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - p), rtol=1e-6)


def test_dropout_with_p_one_drops_everything():
    np.testing.assert_array_equal(nn.Dropout(1.0)(mc.tensor(np.ones((3, 3), dtype=np.float32))).numpy(), np.zeros((3, 3)))


def test_dropout_gradient_is_the_mask_scale():
    mc.manual_seed(1)
    x = mc.tensor(np.ones((30, 30)), requires_grad=True)
    out = nn.Dropout(0.4)(x)
    out.backward(np.ones((30, 30)))
    np.testing.assert_allclose(x.grad.numpy(), out.numpy(), rtol=1e-12)  # both are keep / (1 - p)
    assert set(np.unique(out.numpy()).round(12)) == {0.0, round(1 / 0.6, 12)}


def test_dropout_masks_follow_manual_seed():
    x = mc.tensor(np.ones((10, 10), dtype=np.float32))
    masks = []
    for seed in (3, 3, 4):
        mc.manual_seed(seed)
        masks.append(nn.Dropout()(x).numpy())
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], masks[2])
