"""`Adam` and `AdamW`: adaptive moment estimation with bias correction, by PyTorch's rules; AdamW
decays the weights directly instead of through the gradient (Loshchilov & Hutter)."""

from __future__ import annotations

import math

from minicnn.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Per parameter p with gradient g, at step t = 1, 2, ... (as `torch.optim.Adam`):

        g = g + weight_decay * p                       (Adam; AdamW instead does p = p * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    So the first step moves every parameter by about lr * sign(g). State per parameter: "step"
    (an int, counted per parameter: a step without a gradient does not count), "exp_avg" (m) and
    "exp_avg_sq" (v), arrays of p's shape.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0):
        defaults = {"lr": float(lr), "betas": (float(betas[0]), float(betas[1])), "eps": float(eps),
                    "weight_decay": float(weight_decay)}
        super().__init__(params, defaults)

    def _check(self, group: dict) -> None:
        super()._check(group)
        name = type(self).__name__
        for index, beta in enumerate(group["betas"]):
            if not 0 <= beta < 1:
                raise ValueError(f"{name}: betas[{index}] must be in [0, 1), got {beta}")
        self._check_nonnegative(group, "eps")

    def _decay(self, param, group: dict, grad):
        """L2 penalty folded into the gradient (Adam); AdamW overrides this."""
        return grad + group["weight_decay"] * param if group["weight_decay"] != 0 else grad

    def _update(self, xp, param, grad, state: dict, group: dict) -> None:
        beta1, beta2 = group["betas"]
        grad = self._decay(param, group, grad)
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(param), exp_avg_sq=xp.zeros_like(param))
        state["step"] += 1
        exp_avg, exp_avg_sq, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
        exp_avg *= beta1
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        denominator = xp.sqrt(exp_avg_sq)
        denominator /= math.sqrt(1 - beta2**step)
        denominator += group["eps"]
        param -= group["lr"] / (1 - beta1**step) * exp_avg / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (as `torch.optim.AdamW`, whose default weight_decay is 0.01):
    each step first shrinks p by p * lr * weight_decay, and the gradient carries no penalty."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _decay(self, param, group: dict, grad):
        if group["weight_decay"] != 0:
            param *= 1 - group["lr"] * group["weight_decay"]
        return grad
