"""minicnn.kernels.cuda's launches, checked without a GPU against a stand-in for CuPy.

The stand-in compiles nothing: its RawModule reads each kernel's parameter list from the very
source NVRTC would get, and every launch is checked against it (count, order, pointer or int or
long long, element type), so a Python call that disagrees with a kernel's signature fails here
rather than corrupting memory on a GPU. float64 launches then run through the host harness, so
each Python wrapper (shapes, allocation, argument order) is compared with the NumPy kernels.
"""

import contextlib
import re
from types import SimpleNamespace

import numpy as np
import pytest

from minicnn.functional.pool import MaxPool2d
from minicnn.kernels import cpu, cuda
from minicnn.kernels.window import Window

rng = np.random.default_rng(16)
ELEMENT_TYPES = {"T": None, "int": np.int32}


class DeviceArray(np.ndarray):
    """A NumPy array that answers `.device.id` like a CuPy array."""

    @property
    def device(self):
        return SimpleNamespace(id=0)


def on_device(array):
    return np.ascontiguousarray(array).view(DeviceArray)


def window_params(source: str) -> str:
    """The text of the WINDOW_PARAMS macro: the fourteen `int` geometry parameters."""
    return re.search(r"#define WINDOW_PARAMS(.*?)\n#define", source, flags=re.S).group(1).replace("\\", " ")


def kernel_parameters(source: str) -> dict[str, list[str]]:
    """{kernel name: its parameter declarations}, WINDOW_PARAMS spelled out."""
    found = re.findall(r"template <typename T>\s*__global__ void (\w+)\((.*?)\)\s*\{", source, flags=re.S)
    return {name: [p.strip() for p in params.replace("WINDOW_PARAMS", window_params(source)).split(",")]
            for name, params in found}


def check_argument(declaration: str, arg, element_type) -> None:
    if "*" in declaration:
        assert isinstance(arg, DeviceArray) and arg.flags.c_contiguous, declaration
        pointee = declaration.replace("const", "").split("*")[0].strip()
        assert arg.dtype == (element_type if pointee == "T" else ELEMENT_TYPES[pointee]), (declaration, arg.dtype)
    elif declaration.startswith("long long"):
        assert type(arg) is np.int64, (declaration, type(arg))
    else:
        assert declaration.startswith("int ") and type(arg) is np.int32, (declaration, type(arg))


class FakeCuPy:
    """Just enough of CuPy for minicnn.kernels.cuda; kernels run through `harness` in float64."""

    def __init__(self, harness):
        self.harness, self.launches = harness, []
        runtime = SimpleNamespace(cudaDevAttrMultiProcessorCount=16, deviceGetAttribute=lambda attribute, device: 4)
        self.cuda = SimpleNamespace(Device=lambda index: contextlib.nullcontext(), runtime=runtime)

    def empty(self, shape, dtype):
        return on_device(np.empty(shape, dtype))

    def full(self, shape, value, dtype):
        return on_device(np.full(shape, value, dtype))

    def ascontiguousarray(self, array):
        return on_device(array)

    def RawModule(self, code, options, name_expressions):
        assert options == cuda.COMPILE_OPTIONS
        parameters = kernel_parameters(code)
        geometry_count = window_params(code).count("int ")
        fake = self

        class Module:
            def get_function(self, expression):
                assert expression in name_expressions
                name, type_name = re.fullmatch(r"(\w+)<(\w+)>", expression).groups()
                return lambda grid, block, args: fake.launch(name, type_name, parameters[name], geometry_count,
                                                             grid, block, args)

        return Module()

    def launch(self, name, type_name, parameters, geometry_count, grid, block, args):
        element_type = {"float": np.float32, "double": np.float64}[type_name]
        assert block == (cuda.BLOCK_SIZE,) and 1 <= grid[0] <= 4 * cuda.BLOCKS_PER_MULTIPROCESSOR
        assert len(args) == len(parameters), (name, len(args), parameters)
        for declaration, arg in zip(parameters, args):
            check_argument(declaration, arg, element_type)
        self.launches.append(name)
        if element_type is np.float64:
            if parameters[-1] == "int ow":  # the harness takes the geometry as one int array
                args = args[:-geometry_count] + (np.array(args[-geometry_count:], dtype=np.int32),)
            self.harness(name, *args)


@pytest.fixture
def fake_cupy(harness, monkeypatch):
    fake = FakeCuPy(harness)
    monkeypatch.setattr(cuda, "cupy_module", lambda: fake)
    cuda._module.cache_clear()
    cuda._max_blocks.cache_clear()
    yield fake
    cuda._module.cache_clear()
    cuda._max_blocks.cache_clear()


def conv_window(shape, weight_shape, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    out = [(shape[2 + i] + pads[2 * i] + pads[2 * i + 1] - dilation[i] * (weight_shape[2 + i] - 1) - 1) // stride[i] + 1
           for i in range(2)]
    return Window.over(shape, weight_shape[2:], stride, dilation, pads, out)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_convolution_launches_match_their_kernels_and_the_numpy_path(fake_cupy, groups, activation):
    x, weight, bias = rng.standard_normal((2, 4, 9, 7)), rng.standard_normal((6, 4 // groups, 3, 2)), rng.standard_normal(6)
    window = conv_window(x.shape, weight.shape, stride=(2, 1), pads=(1, 2, 0, 1), dilation=(1, 2))
    out_shape = (2, 6, window.oh, window.ow)

    cols = cuda.im2col(on_device(x), window)
    np.testing.assert_array_equal(cols, cpu.im2col(x, window))
    product = weight.reshape(groups, 6 // groups, -1) @ np.asarray(cols).reshape(groups, -1, cols.shape[1])
    y = cuda.conv_epilogue(on_device(product), out_shape, on_device(bias), activation)
    expected = cpu.conv_epilogue(product, out_shape, bias, activation)
    np.testing.assert_array_equal(y, expected)
    y = cuda.direct_conv2d(on_device(x), on_device(weight), None, window, groups, activation)
    np.testing.assert_allclose(y, cpu.conv_epilogue(product, out_shape, None, activation), rtol=1e-12, atol=1e-12)

    g_cols = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(cuda.col2im(on_device(g_cols), window), cpu.col2im(g_cols, window), rtol=1e-13, atol=1e-13)
    assert fake_cupy.launches == ["im2col", "conv_epilogue", "direct_conv2d", "col2im"]


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_pooling_launches_match_their_kernels_and_the_numpy_path(fake_cupy, count_include_pad):
    x = rng.integers(-2, 3, size=(2, 3, 9, 8)).astype(np.float64)
    window = MaxPool2d((3, 3), (2, 2), (1, 1), True)._window(x)
    y, argmax = cuda.max_pool(on_device(x), window)
    expected_y, expected_argmax = cpu.max_pool(x, window)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)
    assert argmax.dtype == np.int32

    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(cuda.max_pool_backward(on_device(g), argmax, window),
                               cpu.max_pool_backward(g, expected_argmax, window), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cuda.avg_pool(on_device(x), window, count_include_pad),
                               cpu.avg_pool(x, window, count_include_pad), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cuda.avg_pool_backward(on_device(g), window, count_include_pad),
                               cpu.avg_pool_backward(g, window, count_include_pad), rtol=1e-13, atol=1e-13)
    assert fake_cupy.launches == ["max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward"]


def test_float32_launches_pass_float32_buffers_and_int32_argmax(fake_cupy):
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    window = conv_window(x.shape, weight.shape, pads=(1, 1, 1, 1))
    assert cuda.direct_conv2d(on_device(x), on_device(weight), on_device(np.zeros(2, np.float32)), window, 1, "relu").dtype == np.float32
    assert cuda.im2col(on_device(x), window).dtype == np.float32
    pool = MaxPool2d((2, 2), (2, 2), (0, 0), False)._window(x)
    y, argmax = cuda.max_pool(on_device(x), pool)
    assert (y.dtype, argmax.dtype) == (np.float32, np.int32)
    assert fake_cupy.launches == ["direct_conv2d", "im2col", "max_pool"]


def test_mixed_dtypes_reach_a_kernel_as_one_element_type(fake_cupy):
    """A float64 weight with a float32 image (or a float64 product into a float32 output) must not
    hand the kernel pointers of two element types: the launch check above would catch it."""
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    window = conv_window(x.shape, (3, 2, 3, 3), pads=(1, 1, 1, 1))
    y = cuda.direct_conv2d(on_device(x), on_device(rng.standard_normal((3, 2, 3, 3))), on_device(np.ones(3)),
                           window, 1, None)
    assert y.dtype == np.float32
    out = on_device(np.empty((1, 3, 5, 5), np.float32))
    cuda.conv_epilogue(on_device(rng.standard_normal((3, 25))), out.shape, on_device(np.ones(3)), "relu", out=out)
    assert fake_cupy.launches == ["direct_conv2d", "conv_epilogue"]


def test_unsupported_dtypes_are_refused_with_the_dtype_named(fake_cupy):
    window = conv_window((1, 1, 4, 4), (1, 1, 2, 2))
    with pytest.raises(TypeError, match="float32 or float64 arrays, got int64"):
        cuda.im2col(on_device(np.zeros((1, 1, 4, 4), dtype=np.int64)), window)


def test_poisoned_outputs_start_as_nan(fake_cupy):
    with cuda.poison_outputs():
        buffer = cuda.empty((2, 3), np.float32)
        argmax = cuda.empty((2,), np.int32)
    assert np.isnan(buffer).all() and (argmax == np.iinfo(np.int32).min).all()
