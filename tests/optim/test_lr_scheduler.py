"""Learning-rate schedules: hand values, parity with torch.optim.lr_scheduler, and state_dict resume."""

import json
import math

import numpy as np
import pytest

from minicnn.nn import Parameter
from minicnn.optim import SGD, CosineAnnealingLR, MultiStepLR, StepLR


def two_group_optimizer(lrs=(0.1, 0.02)):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return SGD(groups, lr=lrs[0], momentum=0.9)


SCHEDULES = [
    (StepLR, {"step_size": 3}),
    (StepLR, {"step_size": 5, "gamma": 0.5}),
    (MultiStepLR, {"milestones": [12, 4, 4, 9], "gamma": 0.3}),
    (CosineAnnealingLR, {"T_max": 7}),
    (CosineAnnealingLR, {"T_max": 10, "eta_min": 1e-3}),
]
IDS = [f"{cls.__name__}-{kwargs}" for cls, kwargs in SCHEDULES]


def test_step_lr_by_hand():
    optimizer = two_group_optimizer()
    scheduler = StepLR(optimizer, step_size=2, gamma=0.5)
    seen = [scheduler.get_last_lr()[0]]
    for _ in range(5):
        scheduler.step()
        seen.append(scheduler.get_last_lr()[0])
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.02 * 0.25)


def test_cosine_by_hand_reaches_eta_min_at_t_max():
    optimizer = two_group_optimizer()
    scheduler = CosineAnnealingLR(optimizer, T_max=4, eta_min=0.01)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(4):
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    assert lrs == pytest.approx(expected) and lrs[-1] == pytest.approx(0.01)


def test_construction_leaves_the_lr_of_epoch_zero():
    optimizer = two_group_optimizer()
    scheduler = CosineAnnealingLR(optimizer, T_max=5)
    assert scheduler.get_last_lr() == [0.1, 0.02] and scheduler.last_epoch == 0


@pytest.mark.parametrize("cls, kwargs", SCHEDULES, ids=IDS)
def test_matches_torch_over_twenty_epochs(cls, kwargs):
    torch = pytest.importorskip("torch")
    optimizer = two_group_optimizer()
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in (0.1, 0.02)]
    reference_optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    scheduler = cls(optimizer, **kwargs)
    reference = getattr(torch.optim.lr_scheduler, cls.__name__)(reference_optimizer, **kwargs)
    for _ in range(20):
        assert scheduler.get_last_lr() == pytest.approx(reference.get_last_lr(), rel=1e-10, abs=1e-15)
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(scheduler.get_last_lr())
        reference_optimizer.step()
        reference.step()
        scheduler.step()


@pytest.mark.parametrize("cls, kwargs", SCHEDULES, ids=IDS)
def test_state_dict_round_trip_resumes_the_same_sequence(cls, kwargs):
    first = cls(two_group_optimizer(), **kwargs)
    for _ in range(7):
        first.step()
    state = first.state_dict()
    assert state["arrays"] == {}
    config = json.loads(json.dumps(state["config"]))
    resumed_optimizer = two_group_optimizer()
    resumed = cls(resumed_optimizer, **kwargs)
    resumed.load_state_dict({"config": config, "arrays": {}})
    assert resumed.last_epoch == 7
    assert [g["lr"] for g in resumed_optimizer.param_groups] == first.get_last_lr()
    for _ in range(13):
        first.step()
        resumed.step()
        assert resumed.get_last_lr() == first.get_last_lr()


def test_loading_another_schedulers_state_is_an_error():
    state = StepLR(two_group_optimizer(), step_size=2).state_dict()
    with pytest.raises(ValueError, match="saved by 'StepLR', not CosineAnnealingLR"):
        CosineAnnealingLR(two_group_optimizer(), T_max=3).load_state_dict(state)
    with pytest.raises(ValueError, match="1 parameter group"):
        StepLR(two_group_optimizer(), step_size=2).load_state_dict(StepLR(two_group_optimizer((0.1,)), 2).state_dict())


def test_bad_arguments():
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive"):
        StepLR(two_group_optimizer(), step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max must be a positive"):
        CosineAnnealingLR(two_group_optimizer(), T_max=0)
    with pytest.raises(TypeError, match="needs a minicnn Optimizer"):
        StepLR(object(), step_size=1)
