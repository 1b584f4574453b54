"""SGD: hand-computed updates, argument errors, and step-by-step parity with torch.optim.SGD."""

import numpy as np
import pytest

from minicnn.autograd import Tensor
from minicnn.nn import Parameter
from minicnn.optim import SGD


def param(values, grad=None):
    p = Parameter(np.array(values, dtype=np.float64))
    if grad is not None:
        p.grad = Tensor(np.array(grad, dtype=np.float64))
    return p


def test_one_plain_step_is_p_minus_lr_g():
    p = param([1.0, -2.0, 3.0], grad=[0.5, 1.0, -1.5])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, -2.1, 3.15])


def test_momentum_two_steps_by_hand():
    p = param([1.0, 2.0], grad=[1.0, -1.0])
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    optimizer.step()  # buffer = g1 = [1, -1]
    np.testing.assert_allclose(p.data, [0.9, 2.1])
    p.grad = Tensor(np.array([2.0, 0.0]))
    optimizer.step()  # buffer = 0.9 * [1, -1] + [2, 0] = [2.9, -0.9]
    np.testing.assert_allclose(p.data, [0.9 - 0.29, 2.1 + 0.09])
    np.testing.assert_allclose(optimizer.state[p]["momentum_buffer"], [2.9, -0.9])


def test_dampening_spares_the_first_step_but_not_the_second():
    p = param([0.0], grad=[1.0])
    optimizer = SGD([p], lr=1.0, momentum=0.5, dampening=0.5)
    optimizer.step()  # buffer = g = 1 (no dampening on the first step)
    optimizer.step()  # buffer = 0.5 * 1 + 0.5 * 1 = 1
    np.testing.assert_allclose(p.data, [-2.0])


def test_nesterov_first_step_moves_by_lr_times_one_plus_momentum():
    p = param([1.0], grad=[2.0])
    SGD([p], lr=0.1, momentum=0.9, nesterov=True).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 2.0 * 1.9])


def test_weight_decay_adds_to_the_gradient():
    p = param([2.0], grad=[1.0])
    SGD([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [2.0 - 0.1 * (1.0 + 0.5 * 2.0)])


def test_updates_in_place_keeping_the_array_and_its_dtype():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    p.grad = Tensor(np.ones((2, 3), dtype=np.float32))
    array = p.data
    SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1).step()
    assert p.data is array and p.data.dtype == np.float32
    np.testing.assert_allclose(p.data, 1 - 0.5 * 1.1)


def test_the_gradient_is_left_untouched():
    p = param([1.0], grad=[1.0])
    SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1).step()
    np.testing.assert_array_equal(p.grad.data, [1.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -0.1}, "lr must be >= 0"),
        ({"lr": 0.1, "momentum": -0.5}, "momentum must be >= 0"),
        ({"lr": 0.1, "weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum > 0"),
        ({"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, "dampening = 0"),
    ],
)
def test_bad_arguments_are_clear_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD([param([1.0])], **kwargs)


CONFIGS = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01},
    {"lr": 0.02, "momentum": 0.7, "weight_decay": 0.1, "nesterov": True},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_matches_torch_step_by_step(config):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(shape) for shape in [(3, 4), (4,), (2, 2, 3)]]
    ours = [Parameter(a.copy()) for a in initial]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in initial]
    optimizer, reference = SGD(ours, **config), torch.optim.SGD(theirs, **config)
    for step in range(6):
        for index, (p, t) in enumerate(zip(ours, theirs)):
            if index == 1 and step == 2:  # a parameter without a gradient is skipped by both
                p.grad, t.grad = None, None
                continue
            noise = rng.standard_normal(p.shape)  # plus a pull that follows each framework's own parameter
            p.grad, t.grad = Tensor(0.5 * p.data + noise), torch.tensor(0.5 * t.detach().numpy() + noise)
        optimizer.step()
        reference.step()
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=1e-6)
