"""SignSGD: a step of the same size for every weight, in the direction opposite its gradient's sign.

Bernstein et al. (2018), "signSGD: Compressed Optimisation for Non-Convex Problems"; with momentum it
is their Signum, which steps by the sign of a running mean of the gradients.
"""

from __future__ import annotations

from minicnn.optim import Optimizer


class SignSGD(Optimizer):
    """Per parameter p with gradient g, each step:

        g = g + weight_decay * p
        m = momentum * m + (1 - momentum) * g      (m starts at 0; with momentum 0, m = g)
        p = p - lr * sign(m)

    State per parameter: "momentum_buffer" (m, an array of p's shape), only when momentum != 0. It
    takes the keywords minicnn's `register` asks of an optimizer factory (lr, momentum,
    weight_decay), so the class itself is registered.
    """

    def __init__(self, params, lr: float, momentum: float = 0, weight_decay: float = 0):
        super().__init__(params, {"lr": float(lr), "momentum": float(momentum), "weight_decay": float(weight_decay)})

    def _check(self, group: dict) -> None:
        super()._check(group)
        if not 0 <= group["momentum"] < 1:
            raise ValueError(f"SignSGD: momentum must be in [0, 1), got {group['momentum']}")

    def _update(self, xp, param, grad, state: dict, group: dict) -> None:
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        if group["momentum"] != 0:
            buffer = state.setdefault("momentum_buffer", xp.zeros_like(param))
            buffer *= group["momentum"]
            buffer += (1 - group["momentum"]) * grad
            grad = buffer
        param -= group["lr"] * xp.sign(grad)
