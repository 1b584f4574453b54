"""Adam and AdamW: hand-computed updates, argument errors, and parity with torch.optim."""

import math

import numpy as np
import pytest

from minicnn.autograd import Tensor
from minicnn.nn import Parameter
from minicnn.optim import Adam, AdamW


def param(values, grad=None):
    p = Parameter(np.array(values, dtype=np.float64))
    if grad is not None:
        p.grad = Tensor(np.array(grad, dtype=np.float64))
    return p


def test_first_step_moves_each_parameter_by_about_lr_times_sign_of_grad():
    p = param([1.0, 1.0, 1.0, 1.0], grad=[1e-3, -5.0, 200.0, -0.1])
    Adam([p], lr=0.01).step()
    np.testing.assert_allclose(p.data, 1.0 - 0.01 * np.sign([1e-3, -5.0, 200.0, -0.1]), rtol=1e-6)


def test_two_steps_by_hand():
    lr, (beta1, beta2), eps = 0.1, (0.8, 0.9), 1e-8
    p = param([0.5], grad=[1.0])
    optimizer = Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    optimizer.step()
    p.grad = Tensor(np.array([3.0]))
    optimizer.step()
    m = beta1 * (1 - beta1) * 1.0 + (1 - beta1) * 3.0
    v = beta2 * (1 - beta2) * 1.0 + (1 - beta2) * 9.0
    second = lr / (1 - beta1**2) * m / (math.sqrt(v) / math.sqrt(1 - beta2**2) + eps)
    np.testing.assert_allclose(p.data, [0.5 - lr - second], rtol=1e-7)
    assert optimizer.state[p]["step"] == 2


def test_adam_weight_decay_goes_through_the_moments_but_adamw_shrinks_the_weights():
    p, q = param([2.0], grad=[0.0]), param([2.0], grad=[0.0])
    Adam([p], lr=0.1, weight_decay=0.5).step()
    AdamW([q], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [2.0 - 0.1], rtol=1e-6)  # the penalty gradient, normalised
    np.testing.assert_allclose(q.data, [2.0 * (1 - 0.1 * 0.5)])  # zero gradient: only the decay


def test_adamw_defaults_to_pytorchs_weight_decay():
    assert AdamW([param([1.0])]).defaults["weight_decay"] == 0.01
    assert Adam([param([1.0])]).defaults["weight_decay"] == 0


def test_state_is_created_lazily_on_the_parameters_dtype():
    p = Parameter(np.ones(3, dtype=np.float32))
    optimizer = Adam([p])
    assert optimizer.state == {}
    p.grad = Tensor(np.ones(3, dtype=np.float32))
    optimizer.step()
    assert optimizer.state[p]["exp_avg"].dtype == np.float32 and p.data.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -1e-3}, "lr must be >= 0"),
        ({"betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0, 1\)"),
        ({"betas": (0.9, -0.1)}, r"betas\[1\] must be in \[0, 1\)"),
        ({"eps": -1e-8}, "eps must be >= 0"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
    ],
)
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_bad_arguments_are_clear_value_errors(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {message}"):
        cls([param([1.0])], **kwargs)


CONFIGS = [
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6}),
    (Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (AdamW, {"lr": 0.01}),
    (AdamW, {"lr": 0.02, "betas": (0.5, 0.9), "weight_decay": 0.3}),
]


@pytest.mark.parametrize("cls, config", CONFIGS, ids=lambda c: getattr(c, "__name__", None) or str(c))
def test_matches_torch_step_by_step(cls, config):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    initial = [rng.standard_normal(shape) for shape in [(3, 4), (4,), (2, 2, 3)]]
    ours = [Parameter(a.copy()) for a in initial]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in initial]
    optimizer, reference = cls(ours, **config), getattr(torch.optim, cls.__name__)(theirs, **config)
    for step in range(8):
        for index, (p, t) in enumerate(zip(ours, theirs)):
            if index == 2 and step in (1, 4):  # skipped steps do not count towards this parameter's t
                p.grad, t.grad = None, None
                continue
            noise = rng.standard_normal(p.shape)
            p.grad, t.grad = Tensor(0.5 * p.data + noise), torch.tensor(0.5 * t.detach().numpy() + noise)
        optimizer.step()
        reference.step()
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=1e-6)
    assert optimizer.state[ours[2]]["step"] == int(reference.state[theirs[2]]["step"]) == 6
