"""The built-in optimizers plugin: sgd and adam, and the learning-rate schedules cosine, step and none.

A plugin like any other, loaded from `minicnn.plugin.manager.BUILTIN_PLUGINS`, so `minicnn train
--optimizer` and `--schedule` find minicnn's own choices and a plugin's the same way, and what ships
here keeps its names. Each factory takes every setting of a run (see `minicnn.plugin.hookspecs`).
"""

from __future__ import annotations

from minicnn import optim
from minicnn.plugin.hookspecs import hookimpl


def sgd(params, *, lr: float, momentum: float, weight_decay: float) -> optim.SGD:
    """SGD with Nesterov momentum whenever there is momentum (the run's default is 0.9)."""
    return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)


def adam(params, *, lr: float, momentum: float, weight_decay: float) -> optim.Adam:
    """Adam with its usual betas; `momentum` is not one of its settings."""
    return optim.Adam(params, lr=lr, weight_decay=weight_decay)


def cosine(optimizer, *, epochs: int) -> optim.CosineAnnealingLR:
    return optim.CosineAnnealingLR(optimizer, T_max=epochs)


def step(optimizer, *, epochs: int) -> optim.StepLR:
    return optim.StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.1)


def constant(optimizer, *, epochs: int) -> None:
    return None


@hookimpl
def minicnn_register_optimizers(register):
    register("sgd", sgd, default_lr=0.03, description="SGD with Nesterov momentum (0.9 unless the run sets another)")
    register("adam", adam, default_lr=1e-3, description="Adam (betas 0.9, 0.999)")


@hookimpl
def minicnn_register_schedules(register):
    register("cosine", cosine, description="cosine annealing from the learning rate to 0 over the run")
    register("step", step, description="the learning rate x0.1 every third of the run")
    register("none", constant, description="a constant learning rate")
