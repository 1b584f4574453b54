"""`Optimizer`: the parameter groups, per-parameter state and checkpoint format every optimizer shares.

An optimizer holds PyTorch-style parameter groups: `param_groups` is a list of dicts, each with a
"params" list and that group's hyperparameters ("lr", ...), so a scheduler or a user can change
`group["lr"]` between steps. `step()` visits every parameter that has a gradient and hands its raw
arrays to the subclass's `_update`, which changes `param.data` in place with the parameter's own
array module (NumPy or CuPy): the update stays on the parameter's device and the Parameter objects a
model holds keep working.

Checkpoint format (no pickle): `state_dict()` returns

    {"config": {"optimizer": "Adam",
                "param_groups": [{"lr": 0.001, "betas": [0.9, 0.999], ..., "params": [0, 1, 2]}],
                "state": {"0": {"step": 3}, ...}},          # JSON: hyperparameters and counters
     "arrays": {"0.exp_avg": ndarray, "0.exp_avg_sq": ndarray, ...}}   # NumPy copies, on the CPU

Parameters are numbered in order across the groups ("params" lists those numbers); a parameter's
array state is keyed "<number>.<name>" and its scalar state sits under config["state"]["<number>"].
`json.dumps(sd["config"])` works and `np.savez(path, **sd["arrays"])` stores the rest.
"""

from __future__ import annotations

import math

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor


class Optimizer:
    """Base class: subclasses pass their `defaults`, and write `_check(group)` and `_update(...)`.

    params: an iterable of Parameters (one group), or of dicts `{"params": [...], "lr": ...}` whose
    keys override `defaults` for that group.
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__} takes an iterable of Parameters, not a single tensor: "
                "pass model.parameters() or [param]"
            )
        groups = list(params)
        if not groups:
            raise ValueError(
                f"{type(self).__name__} got an empty parameter list: pass model.parameters() of a model "
                "that has parameters (a generator is used up after one pass)"
            )
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[Tensor, dict] = {}
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters (fine-tuning a new head, say) with its own hyperparameters."""
        name = type(self).__name__
        params = group.get("params")
        if params is None or isinstance(params, Tensor):
            params = [] if params is None else [params]
        params = list(params)
        if not params:
            raise ValueError(f"{name}: a parameter group needs a non-empty 'params' list")
        for index, param in enumerate(params):
            if not isinstance(param, Tensor):
                raise TypeError(f"{name}: parameter {index} of a group is a {type(param).__name__}, not a Parameter")
        known = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or known & {id(p) for p in params}:
            raise ValueError(f"{name}: a parameter appears more than once across the parameter groups")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{name}: unknown hyperparameter(s) {sorted(unknown)}; known: {sorted(self.defaults)}")
        merged = {**self.defaults, **group, "params": params}
        self._check(merged)
        self.param_groups.append(merged)

    def _check(self, group: dict) -> None:
        """Raise ValueError for a hyperparameter out of range; every group passes through here."""
        self._check_nonnegative(group, "lr", "weight_decay")

    def _check_nonnegative(self, group: dict, *keys: str) -> None:
        """Each of `keys` that the group has must be a finite number >= 0 (a NaN fails every
        comparison, so `x < 0` alone would let it through and turn every weight into NaN)."""
        for key in keys:
            value = group.get(key, 0)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{type(self).__name__}: {key} must be >= 0 and finite, got {value}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: drop them (the default, as in PyTorch) or fill them with zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif param.grad is not None:
                    param.grad.data[...] = 0

    def step(self) -> None:
        """Update, in place, every parameter that has a gradient; the rest are left alone."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.shape != param.shape:
                    raise ValueError(
                        f"{type(self).__name__}: a parameter of shape {param.shape} has a gradient of shape "
                        f"{param.grad.shape}"
                    )
                xp = backend.get_array_module(param.data)
                self._update(xp, param.data, param.grad.data, self.state.setdefault(param, {}), group)

    def _update(self, xp, param, grad, state: dict, group: dict) -> None:
        """Change the raw array `param` in place from `grad`; `state` is this parameter's own dict."""
        raise NotImplementedError(f"{type(self).__name__} must define _update()")

    # -- checkpoints ----------------------------------------------------------------------------

    def _numbered(self) -> list[Tensor]:
        return [param for group in self.param_groups for param in group["params"]]

    def state_dict(self) -> dict:
        """{"config": JSON-able dict, "arrays": {"<number>.<name>": np.ndarray}}; see the module docstring."""
        number = {id(p): i for i, p in enumerate(self._numbered())}
        groups = []
        for group in self.param_groups:
            hyper = {key: list(value) if isinstance(value, tuple) else value for key, value in group.items()}
            groups.append({**hyper, "params": [number[id(p)] for p in group["params"]]})
        scalars, arrays = {}, {}
        for param, state in self.state.items():
            for key, value in state.items():
                if hasattr(value, "shape"):
                    arrays[f"{number[id(param)]}.{key}"] = np.array(backend.to_numpy(value), copy=True)
                else:
                    scalars.setdefault(str(number[id(param)]), {})[key] = value
        config = {"optimizer": type(self).__name__, "param_groups": groups, "state": scalars}
        return {"config": config, "arrays": arrays}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and per-parameter state saved by `state_dict()`.

        The saved groups must hold as many parameters as this optimizer's, with state arrays of the
        parameters' shapes; each array is copied to its parameter's device and dtype.
        """
        name = type(self).__name__
        config, arrays = state_dict["config"], state_dict["arrays"]
        if config.get("optimizer") != name:
            raise ValueError(f"{name}.load_state_dict: the state was saved by {config.get('optimizer')!r}, not {name}")
        saved = [len(group["params"]) for group in config["param_groups"]]
        own = [len(group["params"]) for group in self.param_groups]
        if saved != own:
            raise ValueError(
                f"{name}.load_state_dict: the state has parameter groups of sizes {saved} but this optimizer has "
                f"{own}: build the optimizer over the same model parameters, in the same order"
            )
        params = self._numbered()

        def numbered(number: str, key: str) -> Tensor:
            if not number.isdigit() or int(number) >= len(params):
                raise ValueError(f"{name}.load_state_dict: state {key!r} names no parameter of this optimizer")
            return params[int(number)]

        state: dict[Tensor, dict] = {}
        for number, value in config["state"].items():
            state.setdefault(numbered(number, number), {}).update(value)
        for key, value in arrays.items():
            number, _, field = key.partition(".")
            param = numbered(number if field else "", key)
            value = backend.to_numpy(value)
            if tuple(value.shape) != param.shape:
                raise ValueError(
                    f"{name}.load_state_dict: state array {key!r} has shape {tuple(value.shape)} but parameter "
                    f"{number} has shape {param.shape}"
                )
            copied = np.array(value, dtype=param.dtype, copy=True)
            state.setdefault(param, {})[field] = backend.to_device(copied, param.device)
        for group, saved_group in zip(self.param_groups, config["param_groups"]):
            for key, value in saved_group.items():
                if key != "params":
                    group[key] = tuple(value) if isinstance(self.defaults.get(key), tuple) else value
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            settings = ", ".join(f"{key}={value}" for key, value in group.items() if key != "params")
            lines.append(f"  group {index}: {len(group['params'])} parameters, {settings}")
        return "\n".join(lines + [")"])
