"""gradcheck must pass correct gradients and catch wrong ones, saying where."""

import numpy as np
import pytest

import minicnn as mc
from minicnn.autograd import Function
from minicnn.testing import GradcheckError, gradcheck


class Cube(Function):
    """x^3 with a configurable mistake in one gradient element."""

    def __init__(self, wrong_element=None):
        self.wrong_element = wrong_element

    def forward(self, x):
        self.save_for_backward(x)
        return x**3

    def backward(self, g):
        (x,) = self.saved
        grad = 3 * x**2 * g
        if self.wrong_element is not None:
            grad = grad.copy()
            grad[self.wrong_element] += 50.0
        return grad


def test_correct_gradient_passes():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert gradcheck(lambda t: Cube()(t), [x])


def test_float32_inputs_are_checked_in_float64():
    x = mc.tensor(np.random.default_rng(1).standard_normal(5).astype(np.float32))
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return Cube()(t)

    gradcheck(fn, [x])
    assert set(seen) == {np.dtype(np.float64)}


def test_wrong_element_is_named():
    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3, 4\)\), element \(1, 2\)") as info:
        gradcheck(lambda t: Cube(wrong_element=(1, 2))(t), [x])
    assert "analytic" in str(info.value) and "numeric" in str(info.value)


def test_directional_check_catches_errors_in_large_inputs():
    x = np.random.default_rng(0).standard_normal(5000)
    with pytest.raises(GradcheckError, match="directional"):
        gradcheck(lambda t: Cube(wrong_element=4321)(t), [x], max_elements=100)


def test_wrong_gradient_in_second_input_is_attributed_to_it():
    class Product(Function):
        def forward(self, a, b):
            self.save_for_backward(a, b)
            return a * b

        def backward(self, g):
            a, b = self.saved
            return g * b, g * b  # the second should be g * a

    rng = np.random.default_rng(2)
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(lambda a, b: Product()(a, b), [rng.standard_normal(3), rng.standard_normal(3)])


def test_non_float_inputs_pass_through():
    logits = np.random.default_rng(3).standard_normal((4, 3))
    target = np.array([0, 2, 1, 2])
    assert gradcheck(lambda x, t: mc.functional.cross_entropy(x, t), [logits, target])


def test_no_float_input_is_an_error():
    with pytest.raises(ValueError, match="no floating-point input"):
        gradcheck(lambda t: t, [np.array([1, 2])])
