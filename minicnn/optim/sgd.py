"""`SGD`: stochastic gradient descent with momentum, dampening, Nesterov and weight decay, by
PyTorch's rules, so hyperparameters tuned there carry over unchanged."""

from __future__ import annotations

from minicnn.kernels import kernels_for
from minicnn.optim.optimizer import Optimizer


class SGD(Optimizer):
    """Per parameter p with gradient g, each step (as `torch.optim.SGD`):

        g = g + weight_decay * p
        b = g                                         (first step: the buffer starts as the gradient)
        b = momentum * b + (1 - dampening) * g        (later steps)
        g = g + momentum * b if nesterov else b       (when momentum != 0)
        p = p - lr * g

    State per parameter: "momentum_buffer" (an array of p's shape), only when momentum != 0.
    """

    def __init__(self, params, lr: float, momentum: float = 0, weight_decay: float = 0,
                 nesterov: bool = False, dampening: float = 0):
        defaults = {"lr": float(lr), "momentum": float(momentum), "dampening": float(dampening),
                    "weight_decay": float(weight_decay), "nesterov": bool(nesterov)}
        super().__init__(params, defaults)

    def _check(self, group: dict) -> None:
        super()._check(group)
        self._check_nonnegative(group, "momentum", "dampening")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum={group['momentum']} "
                f"and dampening={group['dampening']}"
            )

    def _update(self, xp, param, grad, state: dict, group: dict) -> None:
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * param
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is not None:
                kernels_for(param).momentum_step(param, grad, buffer, group["lr"], momentum, group["dampening"],
                                                 group["nesterov"])
                return
            buffer = state["momentum_buffer"] = xp.array(grad, copy=True)
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param -= group["lr"] * grad
