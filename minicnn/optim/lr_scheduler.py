"""Learning-rate schedules, stepped once per epoch as in PyTorch: `StepLR`, `MultiStepLR`,
`CosineAnnealingLR`.

Construction sets epoch 0 (the optimizer's lr, untouched); each `step()` moves to the next epoch and
writes the new lr into every parameter group. Each schedule is a closed form of the epoch and the
group's base lr (its lr when the scheduler was built), so a resumed run follows exactly the same
sequence; an lr set by hand lasts until the next `step()`. The state_dict has the optimizer's
checkpoint format: {"config": JSON-able dict, "arrays": {}}.
"""

from __future__ import annotations

import bisect
import math

from minicnn.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses write `_lr(base_lr, epoch)` and list their settings in `_settings`."""

    _settings: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs a minicnn Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def _lr(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define _lr()")

    def step(self) -> None:
        """Move to the next epoch: call once per epoch, after that epoch's optimizer steps."""
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        self._last_lr = [self._lr(base_lr, self.last_epoch) for base_lr in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lr of each parameter group at the current epoch."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        config = {"scheduler": type(self).__name__, "last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}
        config.update((name, getattr(self, name)) for name in self._settings)
        return {"config": config, "arrays": {}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the epoch, base lrs and settings, and write the restored lr into the optimizer."""
        name, config = type(self).__name__, state_dict["config"]
        if config.get("scheduler") != name:
            raise ValueError(f"{name}.load_state_dict: the state was saved by {config.get('scheduler')!r}, not {name}")
        if len(config["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state has {len(config['base_lrs'])} parameter group(s) but the "
                f"optimizer has {len(self.optimizer.param_groups)}"
            )
        self.last_epoch, self.base_lrs = int(config["last_epoch"]), list(config["base_lrs"])
        for setting in self._settings:
            setattr(self, setting, config[setting])
        self._apply()


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size): decay by gamma every step_size epochs."""

    _settings = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        if int(step_size) < 1:
            raise ValueError(f"StepLR: step_size must be a positive number of epochs, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def _lr(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones <= epoch): decay by gamma at each milestone epoch."""

    _settings = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer)

    def _lr(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2: half a cosine from
    base_lr down to eta_min over T_max epochs (rising again after, as in PyTorch)."""

    _settings = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0):
        if int(T_max) < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive number of epochs, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def _lr(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
