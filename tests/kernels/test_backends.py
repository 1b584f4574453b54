"""Every kernel backend against the reference over NumPy, method by method, on the same inputs.

The interface is ReferenceBackend's public methods (minicnn.kernels.reference). Each backend here
runs every one of them on the inputs of CASES, float32 and float64, and must give what
ReferenceBackend(numpy) gives, to rounding: the CPU's (its C kernels, where built) always, CUDA's
where a GPU is usable (marked `gpu`, with every output buffer poisoned with NaN first). A method of
the interface without cases fails, as does a backend class that lacks one or changes its
parameters, or that shows anything public beyond the interface (a capability flag, say).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from dataclasses import dataclass, field

import numpy as np
import pytest

from minicnn import backend as devices
from minicnn.functional.pool import MaxPool2d
from minicnn.functional.sizes import conv_output_size
from minicnn.kernels import cpu
from minicnn.kernels.reference import ReferenceBackend
from minicnn.kernels.window import Window

INTERFACE = sorted(name for name, value in vars(ReferenceBackend).items() if callable(value) and not name.startswith("_"))
NUMPY = ReferenceBackend(np)
FLAGS = ("has_c_kernels", "uses_direct_conv", "fuses_momentum_step", "DIRECT_BACKWARD")
TOLERANCES = {np.float32: 2e-4, np.float64: 1e-10}


@dataclass
class Case:
    """One call: `make(rng, dtype)` gives the arguments; `compare` says what of the result must agree:
    "values" (every array in it), "buffer" (the shape and dtype of a new buffer), "count" (a number of
    images, at least one: each device sizes its slices), "in_place" (the arrays at `mutated`
    positions, after the call), "outputs" (the first two items: y and the statistics)."""

    make: object
    compare: str = "values"
    mutated: tuple = field(default=())


def conv_window(shape, weight_shape, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)) -> Window:
    out = tuple(conv_output_size(shape[2 + i], weight_shape[2 + i], stride[i], pads[2 * i] + pads[2 * i + 1], dilation[i])
                for i in range(2))
    return Window.over(shape, weight_shape[2:], stride, dilation, pads, out)


# (x shape, weight shape, stride, pads, dilation, groups): the C convolution's layers (LeNet's,
# stride 1; ResNet's downsampling, stride 2 and 32 channels), the GPU's direct ones (few input
# channels, depthwise), and im2col's (dilated, grouped, 7x7 strided), and an empty batch.
CONV_LAYERS = [
    ((3, 1, 12, 12), (6, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    ((2, 6, 10, 10), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 8, 9, 9), (32, 8, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    ((2, 4, 7, 8), (4, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),
    ((2, 4, 9, 8), (6, 2, 3, 2), (2, 1), (1, 2, 0, 1), (2, 1), 2),
    ((1, 3, 13, 11), (5, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    ((0, 3, 6, 6), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
]


def conv_inputs(rng, dtype, layer, bias: bool):
    x_shape, w_shape, stride, pads, dilation, groups = layer
    x, weight = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    return x, weight, rng.standard_normal(w_shape[0]).astype(dtype) if bias else None, \
        conv_window(x_shape, w_shape, stride, pads, dilation), groups


def conv2d_case(layer, bias, activation):
    def make(rng, dtype):
        x, weight, b, window, groups = conv_inputs(rng, dtype, layer, bias)
        return x, weight, b, window, groups, activation
    return Case(make)


def conv2d_backward_case(layer, activation, needs):
    def make(rng, dtype):
        x, weight, bias, window, groups = conv_inputs(rng, dtype, layer, True)
        y = NUMPY.conv2d(x, weight, bias, window, groups, activation)
        g = rng.standard_normal(y.shape).astype(dtype)
        return g, x if needs[1] else None, weight, y if activation else None, window, groups, activation, needs
    return Case(make)


def im2col_case(layer):
    def make(rng, dtype):
        x, _, _, window, _ = conv_inputs(rng, dtype, layer, False)
        return x, window
    return Case(make)


def col2im_case(layer, into_out: bool):
    def make(rng, dtype):
        _, _, _, window, _ = conv_inputs(rng, dtype, layer, False)
        cols = rng.standard_normal((window.c * window.kh * window.kw, window.n * window.oh * window.ow)).astype(dtype)
        out = np.empty((window.n, window.c, window.h, window.w), dtype) if into_out else None
        return cols, window, out
    return Case(make)


def epilogue_case(n, bias, activation):
    def make(rng, dtype):
        shape = (n, 5, 3, 4)
        cm = rng.standard_normal((5, n * 12)).astype(dtype)
        return cm, shape, rng.standard_normal(5).astype(dtype) if bias else None, activation
    return Case(make)


# (x shape, kernel, stride, padding, ceil_mode): LeNet's, overlapping with padding, ceil mode, and
# a 17x17 kernel (more offsets than a uint8 argmax holds).
POOLS = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False),
    ((2, 2, 9, 7), (3, 3), (2, 2), (1, 1), True),
    ((1, 3, 10, 7), (3, 2), (2, 1), (1, 0), True),
    ((1, 2, 20, 18), (17, 17), (1, 1), (0, 0), False),
]


def pool_input(rng, dtype, pool, ties: bool):
    """Small integers make ties (the first maximum wins); a NaN counts as the maximum."""
    shape, kernel, stride, padding, ceil_mode = pool
    x = rng.integers(-3, 4, shape).astype(dtype) if ties else rng.standard_normal(shape).astype(dtype)
    if ties:
        x.flat[rng.choice(x.size, 2, replace=False)] = np.nan
    return x, MaxPool2d(kernel, stride, padding, ceil_mode)._window(x)


def max_pool_case(pool, ties):
    return Case(lambda rng, dtype: pool_input(rng, dtype, pool, ties))


def max_pool_backward_case(pool):
    def make(rng, dtype):
        x, window = pool_input(rng, dtype, pool, ties=True)
        y, argmax = NUMPY.max_pool(x, window)
        return rng.standard_normal(y.shape).astype(dtype), argmax, window
    return Case(make)


def avg_pool_case(pool, count_include_pad, backward: bool):
    def make(rng, dtype):
        x, window = pool_input(rng, dtype, pool, ties=False)
        if not backward:
            return x, window, count_include_pad
        return rng.standard_normal((window.n, window.c, window.oh, window.ow)).astype(dtype), window, count_include_pad
    return Case(make)


LARGE = (2, 4, 100, 100)  # over C_ADD_MIN_SIZE, and several blocks of the C kernels' threads


def with_specials(x):
    x.flat[:4] = [np.nan, -0.0, np.inf, -np.inf]
    return x


def batch_norm_inputs(rng, dtype, shape, affine):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    channels = shape[1]
    weight = np.linspace(0.5, 2, channels).astype(dtype) if affine else None
    bias = np.linspace(-1, 1, channels).astype(dtype) if affine else None
    return x, weight, bias


def batch_norm_forward_case(shape, affine, training):
    def make(rng, dtype):
        x, weight, bias = batch_norm_inputs(rng, dtype, shape, affine)
        stats = None if training else (np.full(shape[1], 0.5, dtype), np.linspace(1, 2, shape[1]).astype(dtype))
        return x, weight, bias, 1e-5, stats
    return Case(make, compare="outputs")


def batch_norm_backward_case(shape, affine, training, needs_input_grad, normalised: bool):
    """The forward pass's saved arrays as the CPU's C kernels keep them (x and mean), or as the
    reference keeps them (x_hat, mean None)."""
    def make(rng, dtype):
        x, weight, _ = batch_norm_inputs(rng, dtype, shape, affine)
        _, (mean, var), saved = NUMPY.batch_norm_forward(x, weight, None, 1e-5)
        inv_std = saved[2]
        g = rng.standard_normal(shape).astype(dtype)
        if normalised:
            return g, saved[0], None, inv_std, weight, training, needs_input_grad
        return g, x, mean, inv_std, weight, training, needs_input_grad
    return Case(make)


def momentum_case(size, dampening, nesterov):
    def make(rng, dtype):
        param, grad, buffer = (rng.standard_normal(size).astype(dtype) for _ in range(3))
        return param, grad, buffer, 0.05, 0.9, dampening, nesterov
    return Case(make, compare="in_place", mutated=(0, 2))


CASES = {
    "empty": [Case(lambda rng, dtype: ((2, 3, 4), dtype), compare="buffer")],
    "conv_chunk_size": [Case(lambda rng, dtype: (conv_window((64, 16, 32, 32), (16, 16, 3, 3), pads=(1,) * 4),
                                                 np.dtype(dtype).itemsize), compare="count")],
    "conv2d": [conv2d_case(layer, bias, activation) for layer in CONV_LAYERS
               for bias, activation in [(True, None), (True, "relu"), (False, "relu")]],
    "conv2d_backward": [conv2d_backward_case(layer, activation, needs) for layer in CONV_LAYERS
                        for activation, needs in [(None, (True, True, True)), ("relu", (True, True, True)),
                                                  ("relu", (False, True)), ("relu", (False, False, True)),
                                                  (None, (True, False))]],
    "im2col": [im2col_case(layer) for layer in CONV_LAYERS],
    "col2im": [col2im_case(layer, into_out) for layer in CONV_LAYERS[:-1] for into_out in (False, True)],
    "conv_epilogue": [epilogue_case(n, bias, activation) for n in (1, 3) for bias, activation in
                      [(True, None), (True, "relu"), (False, "relu")]],
    "max_pool": [max_pool_case(pool, ties) for pool in POOLS for ties in (False, True)],
    "max_pool_backward": [max_pool_backward_case(pool) for pool in POOLS],
    "avg_pool": [avg_pool_case(pool, count, backward=False) for pool in POOLS for count in (True, False)],
    "avg_pool_backward": [avg_pool_case(pool, count, backward=True) for pool in POOLS for count in (True, False)],
    "add": [Case(lambda rng, dtype: (rng.standard_normal(LARGE).astype(dtype), rng.standard_normal(LARGE).astype(dtype))),
            Case(lambda rng, dtype: (rng.standard_normal(LARGE).astype(dtype),
                                     rng.standard_normal((1, 4, 1, 100)).astype(dtype))),
            Case(lambda rng, dtype: (rng.standard_normal((3, 5)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)))],
    "relu": [Case(lambda rng, dtype: (with_specials(rng.standard_normal(LARGE).astype(dtype)),)),
             Case(lambda rng, dtype: (np.array(-1.5, dtype),))],
    "relu_backward": [Case(lambda rng, dtype: (with_specials(rng.standard_normal(LARGE).astype(dtype)),
                                               with_specials(rng.standard_normal(LARGE).astype(dtype)))),
                      Case(lambda rng, dtype: (rng.standard_normal((4, 6)), rng.standard_normal((4, 6)).astype(dtype)))],
    "momentum_step": [momentum_case(size, dampening, nesterov) for size in (6, 300_000)
                      for dampening, nesterov in [(0.0, False), (0.25, False), (0.0, True)]],
    "batch_norm_forward": [batch_norm_forward_case(shape, affine, training) for shape in [(8, 3), (4, 5, 7, 6)]
                           for affine in (True, False) for training in (True, False)],
    "batch_norm_backward": [batch_norm_backward_case((4, 5, 7, 6), affine, training, needs, normalised)
                            for affine in (True, False) for training in (True, False)
                            for needs in (True, False) for normalised in (True, False)]
                           + [batch_norm_backward_case((8, 3), True, True, True, False)],
}


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device_backend(request):
    """(the device, its backend): the CPU's, and the GPU's where one is usable (else the case skips)."""
    if request.param == "cuda" and (reason := devices.gpu_unavailable_reason()) is not None:
        pytest.skip(f"needs a usable GPU: {reason}")
    target = devices.device(request.param)
    return target, target.kernels


def test_every_method_of_the_interface_has_cases():
    assert sorted(CASES) == INTERFACE


@pytest.mark.parametrize("module_name", ["cpu", "cuda"])
def test_each_backend_class_has_the_interface_and_nothing_else_public(module_name):
    module = importlib.import_module(f"minicnn.kernels.{module_name}")
    backend_class = getattr(module, f"{module_name.capitalize()}Backend")
    assert issubclass(backend_class, ReferenceBackend)
    for name in INTERFACE:
        method = getattr(backend_class, name, None)
        assert callable(method), f"{backend_class.__name__} lacks {name}"
        assert list(inspect.signature(method).parameters.values()) == \
            list(inspect.signature(getattr(ReferenceBackend, name)).parameters.values()), name
    public = {name for klass in backend_class.__mro__[:-1] for name in vars(klass) if not name.startswith("_")}
    assert public == set(INTERFACE)


@pytest.mark.parametrize("module_name", ["kernels", "kernels.cpu", "kernels.cuda", "kernels.reference", "kernels.native",
                                         "backend"])
def test_no_capability_flag_is_left(module_name):
    module = importlib.import_module(f"minicnn.{module_name}")
    assert [flag for flag in FLAGS if hasattr(module, flag)] == []


def test_each_device_hands_out_one_backend(device_backend):
    target, kernels = device_backend
    assert target.kernels is kernels and devices.device(str(target)).kernels is kernels
    assert isinstance(kernels, cpu.CpuBackend if target.type == "cpu" else ReferenceBackend)


@pytest.mark.parametrize("method", INTERFACE)
def test_every_method_agrees_with_the_reference(device_backend, method, dtype):
    target, kernels = device_backend
    for number, case in enumerate(CASES[method]):
        args = case.make(np.random.default_rng(number), dtype)
        expected_args = _copies(args)
        expected = getattr(NUMPY, method)(*expected_args)
        with _poisoned(target):
            device_args = _on(target, args)
            got = getattr(kernels, method)(*device_args)
        what = f"{method} case {number}"
        if case.compare == "buffer":
            assert (got.shape, got.dtype) == (expected.shape, expected.dtype), what
        elif case.compare == "count":
            assert isinstance(got, int) and got >= 1, what
        elif case.compare == "in_place":
            for position in case.mutated:
                _assert_agree(devices.to_numpy(device_args[position]), expected_args[position], dtype, what)
        else:
            _assert_agree(got[:2] if case.compare == "outputs" else got, expected[:2] if case.compare == "outputs"
                          else expected, dtype, what)


def _copies(args):
    return tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)


def _on(target, value):
    """`value` with every NumPy array in it (tuples included) copied to `target`."""
    if isinstance(value, tuple):
        return tuple(_on(target, item) for item in value)
    if isinstance(value, np.ndarray):
        return devices.to_device(np.array(value, copy=True), target)
    return value


def _poisoned(target):
    """Every output buffer of the CUDA kernels NaN-filled first, so an element left unwritten shows."""
    if target.type == "cpu":
        return contextlib.nullcontext()
    return importlib.import_module("minicnn.kernels.cuda").poison_outputs()


def _assert_agree(got, expected, dtype, what: str) -> None:
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected), what
        for i, (g, e) in enumerate(zip(got, expected)):
            _assert_agree(g, e, dtype, f"{what}, item {i}")
        return
    if expected is None:
        assert got is None, what
        return
    got = devices.to_numpy(got)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, the reference's {expected.shape}"
    if expected.dtype.kind == "f":
        assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype}, the reference's {expected.dtype}"
        tolerance = TOLERANCES[np.dtype(dtype).type]
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(float(finite.max()) if finite.size else 0.0, 1.0)
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * scale, err_msg=what)
    else:  # max pooling's argmax: uint8 here, int32 on the GPU
        np.testing.assert_array_equal(got, expected, err_msg=what)
