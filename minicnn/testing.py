"""Gradient checking for op and layer authors.

    from minicnn.testing import gradcheck
    gradcheck(lambda x, w: F.conv2d(x, w, padding=1), [x, w])

Works in float64 whatever the inputs' dtype. Two checks, both against central differences
(f(x + eps*d) - f(x - eps*d)) / (2*eps) of the scalar L = Σ u * fn(inputs), u a fixed random weighting:
- element-wise, first: each element of each input with at most `max_elements` elements, which
  says exactly which gradient entry is wrong;
- directional: one random direction over every input at once, two forward passes at any size,
  which covers the inputs too large to check element by element.

The conformance check that every registered layer and model should pass (`minicnn check NAME`)
builds on it: see minicnn.tools.conformance.
"""

from __future__ import annotations

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message names the input and element."""


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              max_elements: int = 1000, seed: int = 0) -> bool:
    """Check the gradients of `fn(*inputs)` with respect to every floating-point input.

    fn: callable returning a Tensor. inputs: Tensors, arrays or anything else (passed as given);
    floating Tensors and arrays are copied to float64 Tensors that require gradients.
    Returns True, or raises GradcheckError saying which input, which element, and both values.
    """
    rng = np.random.default_rng(seed)
    args = [_as_checked(value) for value in inputs]
    checked = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no floating-point input to check")

    output = fn(*args)
    if not isinstance(output, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(output).__name__}")
    xp = backend.get_array_module(output.data)
    weights = xp.asarray(rng.standard_normal(output.shape))
    if not output.requires_grad:
        raise GradcheckError("gradcheck: the output does not depend on any checked input (no graph was recorded)")
    output.backward(weights)
    analytic = {i: _grad_or_zeros(args[i]) for i in checked}

    def objective() -> float:
        with no_grad():
            return float((fn(*args).data * weights).sum())

    def central_difference(directions: dict) -> float:
        for i, d in directions.items():
            args[i].data += eps * d
        plus = objective()
        for i, d in directions.items():
            args[i].data -= 2 * eps * d
        minus = objective()
        for i, d in directions.items():
            args[i].data += eps * d
        return (plus - minus) / (2 * eps)

    for i in checked:
        if args[i].numel() > max_elements:
            continue
        for index in np.ndindex(*args[i].shape):
            unit = xp.zeros(args[i].shape)
            unit[index] = 1.0
            numeric = central_difference({i: unit})
            value = float(analytic[i][index])
            if not _close(value, numeric, atol, rtol):
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {args[i].shape}), element {index}: analytic gradient "
                    f"{value:.8g} vs numeric {numeric:.8g} (atol={atol}, rtol={rtol})"
                )

    directions = {i: xp.asarray(rng.standard_normal(args[i].shape)) for i in checked}
    numeric = central_difference(directions)
    predicted = float(sum((analytic[i] * directions[i]).sum() for i in checked))
    if not _close(predicted, numeric, atol, rtol):
        raise GradcheckError(
            f"gradcheck: directional derivative over all inputs: analytic {predicted:.8g} vs numeric "
            f"{numeric:.8g} (atol={atol}, rtol={rtol})"
        )
    return True


def _as_checked(value):
    data = value.data if isinstance(value, Tensor) else value
    if hasattr(data, "dtype") and data.dtype.kind == "f":
        xp = backend.get_array_module(data)
        return Tensor(xp.array(data, dtype=xp.float64), requires_grad=True)
    return value


def _grad_or_zeros(t: Tensor):
    if t.grad is None:
        return backend.get_array_module(t.data).zeros(t.shape)
    return t.grad.data


def _close(a: float, b: float, atol: float, rtol: float) -> bool:
    return abs(a - b) <= atol + rtol * abs(b)
