"""minicnn.kernels.cuda's launches, checked without a GPU against a stand-in for CuPy.

The stand-in compiles nothing: its RawModule reads each kernel's parameter list from the very
source NVRTC would get, checks that it is the kernel's signature in minicnn.kernels.signatures
(cuda.KERNELS), and checks every launch against it (count, order, pointer or int or long long or
the Window2d struct, element type, and the device every pointer and the lookup are on), so a
Python call that disagrees with a kernel's signature fails here rather than corrupting memory on
a GPU.
float64 launches then run through the host harness with the launch's own grid, so each Python
wrapper (shapes, allocation, argument order) is compared with the NumPy kernels; with the grid
capped at one block every kernel goes round its grid-stride loop more than once.
"""

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from minicnn.functional import conv
from minicnn.functional.pool import MaxPool2d
from minicnn.kernels import cuda, reference
from minicnn.kernels.window import STRUCT_DTYPE, Window

rng = np.random.default_rng(16)
NUMPY = reference.ReferenceBackend(np)
ELEMENT_TYPES = {"T": None, "int": np.int32}
# A CUDA parameter's type (const dropped) as the signature table spells it.
TABLE_TYPES = {"T*": "real*", "int*": "int*", "int": "int", "long long": "long", "Window2d": "window"}


class DeviceArray(np.ndarray):
    """A NumPy array that answers `.device.id` like a CuPy array (views keep their device)."""

    device_id = 0

    def __array_finalize__(self, source):
        self.device_id = getattr(source, "device_id", 0)

    @property
    def device(self):
        return SimpleNamespace(id=self.device_id)


def on_device(array, device_id: int = 0):
    array = np.array(array, order="C").view(DeviceArray)
    array.device_id = device_id
    return array


def kernel_parameters(source: str) -> dict[str, list[str]]:
    """{kernel name: its parameter declarations}."""
    found = re.findall(r"template <typename T>\s*__global__ void (\w+)\((.*?)\)\s*\{", source, flags=re.S)
    return {name: [" ".join(p.split()) for p in params.split(",")] for name, params in found}


def as_table_entry(declaration: str) -> tuple[str, str]:
    """("real*", "x") for "const T* x": a parameter declaration as the signature table writes it."""
    *words, name = declaration.replace("const ", "").replace("*", "* ").split()
    return TABLE_TYPES[" ".join(words).replace(" *", "*")], name


def check_argument(declaration: str, arg, element_type) -> None:
    if "*" in declaration:
        assert isinstance(arg, DeviceArray) and arg.flags.c_contiguous, declaration
        pointee = declaration.replace("const", "").split("*")[0].strip()
        assert arg.dtype == (element_type if pointee == "T" else ELEMENT_TYPES[pointee]), (declaration, arg.dtype)
    elif "Window2d" in declaration:  # by value: CuPy passes a one-element host array as a struct
        assert type(arg) is np.ndarray and arg.dtype == STRUCT_DTYPE and arg.shape == (1,), (declaration, arg)
    elif declaration.startswith("long long"):
        assert type(arg) is np.int64, (declaration, type(arg))
    else:
        assert declaration.startswith("int ") and type(arg) is np.int32, (declaration, type(arg))


class FakeCuPy:
    """Just enough of CuPy for minicnn.kernels.cuda; kernels run through `harness` in float64.

    Like CuPy, it allocates on the current device (`cuda.Device(i)` as a context manager switches
    it), and a module's functions work only on the device the module was made on. `matmul` is
    NumPy's, but records the operands CuPy would copy first (`copies`)."""

    def __init__(self, harness):
        self.harness, self.launches, self.passes, self.copies, self.current = harness, [], [], [], 0
        self.free_bytes, self.pool_free_bytes = 1 << 40, 0
        runtime = SimpleNamespace(cudaDevAttrMultiProcessorCount=16, deviceGetAttribute=lambda attribute, device: 4)
        self.cuda = SimpleNamespace(Device=self.Device, runtime=runtime)

    def Device(self, index=None):
        fake = self

        class Device:
            id = fake.current if index is None else index
            mem_info = (fake.free_bytes, 1 << 41)

            def __enter__(self):
                self.before, fake.current = fake.current, self.id

            def __exit__(self, *exc_info):
                fake.current = self.before

        return Device()

    def get_default_memory_pool(self):
        return SimpleNamespace(free_bytes=lambda: self.pool_free_bytes)

    def empty(self, shape, dtype):
        return on_device(np.empty(shape, dtype), self.current)

    def full(self, shape, value, dtype):
        return on_device(np.full(shape, value, dtype), self.current)

    def ascontiguousarray(self, array):
        if isinstance(array, DeviceArray) and array.flags.c_contiguous:
            return array
        return on_device(array, self.current)

    def matmul(self, a, b):
        """CuPy makes each operand of a batched (3-D) product C-contiguous, and each of a 2-D one C-
        or F-contiguous, before cuBLAS sees it (cupy/_core/_routines_linalg.pyx)."""
        for operand in (a, b):
            laid_out = operand.flags.c_contiguous or (operand.ndim == 2 and operand.flags.f_contiguous)
            if not laid_out:
                self.copies.append(operand.shape)
        return np.matmul(a, b)

    def __getattr__(self, name):  # the rest of the array module, as functional code uses it
        return getattr(np, name)

    def RawModule(self, code, options, name_expressions):
        assert options == cuda.COMPILE_OPTIONS
        parameters = kernel_parameters(code)
        (source_name,) = [name for name in cuda.KERNELS if cuda.name_expressions(name) == list(name_expressions)]
        for name, signature in cuda.KERNELS[source_name].items():
            assert [as_table_entry(p) for p in parameters[name]] == list(signature.arguments), (name, parameters[name])
        fake, device_id = self, self.current

        class Module:
            def get_function(self, expression):
                assert expression in name_expressions
                assert fake.current == device_id, f"{expression} looked up on GPU {fake.current}, loaded on {device_id}"
                name, type_name = re.fullmatch(r"(\w+)<(\w+)>", expression).groups()
                return lambda grid, block, args: fake.launch(name, type_name, parameters[name], grid, block, args)

        return Module()

    def launch(self, name, type_name, parameters, grid, block, args):
        element_type = {"float": np.float32, "double": np.float64}[type_name]
        assert block == (cuda.BLOCK_SIZE,) and 1 <= grid[0] <= 4 * cuda.BLOCKS_PER_MULTIPROCESSOR
        assert len(args) == len(parameters), (name, len(args), parameters)
        for declaration, arg in zip(parameters, args):
            check_argument(declaration, arg, element_type)
            if isinstance(arg, DeviceArray):
                assert arg.device_id == self.current, f"{name}: {declaration} on GPU {arg.device_id}, not the current one"
        self.launches.append(name)
        total = args[parameters.index("long long total")]
        self.passes.append(math.ceil(total / (grid[0] * block[0])))
        if element_type is np.float64:
            self.harness(name, *args, grid=(grid[0], block[0]))


@pytest.fixture
def fake_cupy(harness, monkeypatch):
    fake = FakeCuPy(harness)
    monkeypatch.setattr(cuda, "cupy_module", lambda: fake)
    caches = (cuda._module, cuda._max_blocks)  # as they are: a test may replace _max_blocks
    for cache in caches:
        cache.cache_clear()
    yield fake
    for cache in caches:
        cache.cache_clear()


@pytest.fixture
def gpu(fake_cupy):
    """The CUDA backend, over the fake."""
    return cuda.CudaBackend()


@pytest.fixture(params=["full_grid", "one_block"])
def grid_cap(request, fake_cupy, monkeypatch):
    """Launches on the fake's full grid (4 SMs), or capped at one block of BLOCK_SIZE threads;
    returns a check to call at the end of a test: capped, every launch went round its grid-stride
    loop more than once (the test's tensors are sized for that)."""
    capped = request.param == "one_block"
    if capped:
        monkeypatch.setattr(cuda, "_max_blocks", lambda device_id: 1)

    def check():
        assert fake_cupy.launches
        if capped:
            assert min(fake_cupy.passes) > 1, list(zip(fake_cupy.launches, fake_cupy.passes))

    return check


def conv_window(shape, weight_shape, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    out = [(shape[2 + i] + pads[2 * i] + pads[2 * i + 1] - dilation[i] * (weight_shape[2 + i] - 1) - 1) // stride[i] + 1
           for i in range(2)]
    return Window.over(shape, weight_shape[2:], stride, dilation, pads, out)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_convolution_launches_match_their_kernels_and_the_numpy_path(gpu, fake_cupy, grid_cap, groups, activation):
    x, weight, bias = rng.standard_normal((2, 4, 9, 7)), rng.standard_normal((6, 4 // groups, 3, 2)), rng.standard_normal(6)
    window = conv_window(x.shape, weight.shape, stride=(2, 1), pads=(1, 2, 0, 1), dilation=(1, 2))
    out_shape = (2, 6, window.oh, window.ow)

    cols = gpu.im2col(on_device(x), window)
    np.testing.assert_array_equal(cols, NUMPY.im2col(x, window))
    product = weight.reshape(groups, 6 // groups, -1) @ np.asarray(cols).reshape(groups, -1, cols.shape[1])
    y = gpu.conv_epilogue(on_device(product), out_shape, on_device(bias), activation)
    expected = NUMPY.conv_epilogue(product, out_shape, bias, activation)
    np.testing.assert_array_equal(y, expected)
    y = gpu.conv2d(on_device(x), on_device(weight), None, window, groups, activation)
    np.testing.assert_allclose(y, NUMPY.conv_epilogue(product, out_shape, None, activation), rtol=1e-12, atol=1e-12)

    g_cols = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(gpu.col2im(on_device(g_cols), window), NUMPY.col2im(g_cols, window), rtol=1e-13, atol=1e-13)
    assert fake_cupy.launches == ["im2col", "conv_epilogue", "direct_conv2d", "col2im"]
    grid_cap()


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_pooling_launches_match_their_kernels_and_the_numpy_path(gpu, fake_cupy, grid_cap, count_include_pad):
    x = rng.integers(-2, 3, size=(2, 3, 19, 17)).astype(np.float64)
    window = MaxPool2d((3, 3), (2, 2), (1, 1), True)._window(x)
    y, argmax = gpu.max_pool(on_device(x), window)
    expected_y, expected_argmax = NUMPY.max_pool(x, window)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)
    assert argmax.dtype == np.int32

    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(gpu.max_pool_backward(on_device(g), argmax, window),
                               NUMPY.max_pool_backward(g, expected_argmax, window), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(gpu.avg_pool(on_device(x), window, count_include_pad),
                               NUMPY.avg_pool(x, window, count_include_pad), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(gpu.avg_pool_backward(on_device(g), window, count_include_pad),
                               NUMPY.avg_pool_backward(g, window, count_include_pad), rtol=1e-13, atol=1e-13)
    assert fake_cupy.launches == ["max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward"]
    grid_cap()


def test_float32_launches_pass_float32_buffers_and_int32_argmax(gpu, fake_cupy):
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    window = conv_window(x.shape, weight.shape, pads=(1, 1, 1, 1))
    assert gpu.conv2d(on_device(x), on_device(weight), on_device(np.zeros(2, np.float32)), window, 1, "relu").dtype == np.float32
    assert gpu.im2col(on_device(x), window).dtype == np.float32
    pool = MaxPool2d((2, 2), (2, 2), (0, 0), False)._window(x)
    y, argmax = gpu.max_pool(on_device(x), pool)
    assert (y.dtype, argmax.dtype) == (np.float32, np.int32)
    assert fake_cupy.launches == ["direct_conv2d", "im2col", "max_pool"]


# (input channels, kernel side, groups, direct): few products per output take the direct kernel
DIRECT_CASES = {"lenet_c1": (1, 5, 1, True), "rgb_3x3_stem": (3, 3, 1, True), "depthwise": (32, 3, 32, True),
                "lenet_c3": (6, 5, 1, False), "resnet_7x7_stem": (3, 7, 1, False)}


@pytest.mark.parametrize("channels, kernel, groups, direct", DIRECT_CASES.values(), ids=DIRECT_CASES.keys())
def test_direct_convolution_is_chosen_for_few_input_channels_only(gpu, fake_cupy, channels, kernel, groups, direct):
    x = on_device(rng.standard_normal((1, channels, 9, 9)))
    weight = on_device(rng.standard_normal((32, channels // groups, kernel, kernel)))
    gpu.conv2d(x, weight, None, conv_window(x.shape, weight.shape), groups, None)
    assert fake_cupy.launches == (["direct_conv2d"] if direct else ["im2col", "conv_epilogue"])


def test_mixed_dtypes_reach_a_kernel_as_one_element_type(gpu, fake_cupy):
    """A float64 weight with a float32 image (or a float64 product into a float32 output) must not
    hand the kernel pointers of two element types: the launch check above would catch it."""
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    window = conv_window(x.shape, (3, 2, 3, 3), pads=(1, 1, 1, 1))
    y = gpu.conv2d(on_device(x), on_device(rng.standard_normal((3, 2, 3, 3))), on_device(np.ones(3)),
                           window, 1, None)
    assert y.dtype == np.float32
    out = on_device(np.empty((1, 3, 5, 5), np.float32))
    gpu.conv_epilogue(on_device(rng.standard_normal((3, 25))), out.shape, on_device(np.ones(3)), "relu", out=out)
    assert fake_cupy.launches == ["direct_conv2d", "conv_epilogue"]


def test_unsupported_dtypes_are_refused_with_the_dtype_named(gpu, fake_cupy):
    window = conv_window((1, 1, 4, 4), (1, 1, 2, 2))
    with pytest.raises(TypeError, match="float32 or float64 arrays, got int64"):
        gpu.im2col(on_device(np.zeros((1, 1, 4, 4), dtype=np.int64)), window)


def test_poisoned_outputs_start_as_nan(gpu, fake_cupy):
    with cuda.poison_outputs():
        buffer = gpu.empty((2, 3), np.float32)
        argmax = gpu.empty((2,), np.int32)
    assert np.isnan(buffer).all() and (argmax == np.iinfo(np.int32).min).all()


def test_every_wrapper_allocates_looks_up_and_launches_on_its_inputs_gpu(gpu, fake_cupy):
    """Arrays on GPU 1 while GPU 0 is current (`cuda:1` from Python): every buffer, poisoned or not,
    the kernel lookup and the launch must be on GPU 1 (the fake checks each launch)."""
    x = on_device(rng.standard_normal((2, 4, 9, 7)), device_id=1)
    window = conv_window(x.shape, (6, 4, 3, 2), pads=(1, 1, 0, 1))
    pool = MaxPool2d((3, 3), (2, 2), (1, 1), True)._window(x)
    with cuda.poison_outputs():
        cols = gpu.im2col(x, window)
        outputs = [cols, gpu.col2im(cols, window),
                   gpu.conv_epilogue(on_device(rng.standard_normal((6, cols.shape[1])), device_id=1),
                                      (2, 6, window.oh, window.ow), None, "relu"),
                   gpu.conv2d(x, on_device(rng.standard_normal((6, 4, 3, 2)), device_id=1), None, window, 1,
                                      None)]
    y, argmax = gpu.max_pool(x, pool)
    outputs += [y, argmax, gpu.max_pool_backward(y, argmax, pool), gpu.avg_pool(x, pool, True),
                gpu.avg_pool_backward(y, pool, True)]
    assert [array.device.id for array in outputs] == [1] * len(outputs)
    assert fake_cupy.current == 0 and len(fake_cupy.launches) == 8


def test_compile_all_resolves_every_kernel_of_every_source_on_the_device(fake_cupy):
    assert cuda.compile_all(device_id=1) == [name for source in cuda.KERNELS for name in cuda.name_expressions(source)]
    assert len(cuda.compile_all()) == 2 * sum(len(kernels) for kernels in cuda.KERNELS.values())
    assert fake_cupy.launches == []


def test_compile_all_lets_cupys_compile_error_through(fake_cupy, monkeypatch):
    """RawModule compiles when a kernel is first looked up: its error must reach the caller as is."""

    class CompileException(Exception):
        pass

    def failing_module(code, options, name_expressions):
        def get_function(expression):
            raise CompileException("Failed to find CUDA headers")

        return SimpleNamespace(get_function=get_function)

    monkeypatch.setattr(fake_cupy, "RawModule", failing_module, raising=False)
    with pytest.raises(CompileException, match="Failed to find CUDA headers"):
        cuda.compile_all()


def vgg_conv1_2(batch: int) -> Window:
    """VGG-16's second layer: 64 -> 64 channels, 3x3, padding 1, on 224x224 images."""
    return Window(n=batch, c=64, h=224, w=224, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, pads=(1, 1, 1, 1), oh=224, ow=224)


@pytest.mark.parametrize("free_gb, pool_gb", [(8, 0), (2, 6), (0.05, 0)])
def test_conv_chunks_keep_each_im2col_matrix_within_a_share_of_the_free_memory(gpu, fake_cupy, free_gb, pool_gb):
    """VGG-16's conv1_2 at batch 256 would need a 30 GB matrix at once (float32); with 8 GB free
    (the driver's plus the memory pool's) each slice's must stay within a quarter of it."""
    fake_cupy.free_bytes, fake_cupy.pool_free_bytes = int(free_gb * 1e9), int(pool_gb * 1e9)
    window = vgg_conv1_2(256)
    per_image = 64 * 3 * 3 * 224 * 224 * 4
    assert 256 * per_image > 29e9
    images = gpu.conv_chunk_size(window, 4)
    budget = min(cuda.CONV_CHUNK_MAX_BYTES, (free_gb + pool_gb) * 1e9 / cuda.CONV_CHUNK_SHARE)
    assert 1 <= images < 256
    assert images == 1 or images * per_image <= budget  # the slice's matrix fits
    assert (images + 1) * per_image > budget  # and is as large as fits


def test_conv_chunks_take_at_least_one_image_even_of_an_empty_batch(gpu, fake_cupy):
    fake_cupy.free_bytes = 0
    assert gpu.conv_chunk_size(vgg_conv1_2(0), 4) == 1
    assert gpu.conv_chunk_size(vgg_conv1_2(3), 8) == 1


def take_the_gpu_path(monkeypatch, fake):
    """minicnn.functional.conv with the CUDA backend over the fake as its kernels: the GPU code
    path, run on the CPU."""
    backend = cuda.CudaBackend()
    monkeypatch.setattr(conv, "kernels_for", lambda array: backend)


def run_conv(x, weight, bias, **settings):
    """Conv2d's forward and backward called directly (no autograd): (y, gx, gw, gb)."""
    op = conv.Conv2d(**settings)
    op.needs_input_grad = (True, True, True)
    y = op.forward(x, weight, bias)
    g = np.linspace(-1, 1, y.size).reshape(y.shape)
    return (y, *op.backward(on_device(g)))


@pytest.mark.parametrize("groups, activation", [(1, None), (2, "relu")])
def test_conv2d_in_slices_on_the_gpu_path_equals_the_numpy_path_at_once(fake_cupy, monkeypatch, groups, activation):
    """Forward, input and weight gradients in slices of 2 images (2, 2, 1) equal the CPU's, taken
    in one slice, and no product copies an im2col-sized operand: the weight gradient's cols^T
    included (CuPy would copy it whole)."""
    x, weight, bias = (rng.standard_normal(shape) for shape in [(5, 8, 9, 8), (6, 8 // groups, 3, 3), (6,)])
    settings = dict(stride=(2, 1), pads=(1, 1, 1, 0), dilation=(1, 2), groups=groups, activation=activation)
    monkeypatch.setattr(reference, "CONV_CHUNK_BYTES", 1 << 40)
    expected = run_conv(x, weight, bias, **settings)

    window = conv_window(x.shape, weight.shape, settings["stride"], settings["pads"], settings["dilation"])
    rows, columns_per_image = window.c * window.kh * window.kw, window.oh * window.ow
    monkeypatch.setattr(cuda, "_available_bytes", lambda: cuda.CONV_CHUNK_SHARE * 2 * rows * columns_per_image * 8)
    take_the_gpu_path(monkeypatch, fake_cupy)
    results = run_conv(on_device(x), on_device(weight), on_device(bias), **settings)
    for name, got, want in zip(["y", "gx", "gw", "gb"], results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
    largest_copy = max((math.prod(shape) for shape in fake_cupy.copies), default=0)
    assert largest_copy <= 6 * 2 * columns_per_image < rows * 2 * columns_per_image, fake_cupy.copies
    assert fake_cupy.launches.count("im2col") == 6 and fake_cupy.launches.count("col2im") == 3  # forward, gw; gx


def test_conv2d_of_an_empty_batch_on_the_gpu_path(fake_cupy, monkeypatch):
    take_the_gpu_path(monkeypatch, fake_cupy)
    y, gx, gw, gb = run_conv(on_device(np.zeros((0, 4, 6, 5))), on_device(rng.standard_normal((3, 4, 3, 3))), None,
                             pads=(1, 1, 1, 1))
    assert y.shape == (0, 3, 6, 5) and gx.shape == (0, 4, 6, 5)
    np.testing.assert_array_equal(gw, np.zeros((3, 4, 3, 3)))
    np.testing.assert_array_equal(gb, np.zeros(3))


@pytest.mark.parametrize("stage", ["forward", "backward"])
def test_conv2d_out_of_gpu_memory_names_the_shapes_and_a_smaller_batch(fake_cupy, monkeypatch, stage):
    out_of_memory = pytest.importorskip("cupy.cuda.memory").OutOfMemoryError(30_000_000_000, 80_000_000_000)
    take_the_gpu_path(monkeypatch, fake_cupy)
    x, weight = on_device(rng.standard_normal((3, 4, 6, 5))), on_device(rng.standard_normal((2, 4, 3, 3)))
    op = conv.Conv2d()
    op.needs_input_grad = (True, True)
    if stage == "backward":
        op.forward(x, weight)

    def fail(*arrays):
        raise out_of_memory

    monkeypatch.setattr(fake_cupy, "matmul", fail, raising=False)
    with pytest.raises(conv.ConvolutionMemoryError, match=rf"{stage} pass .* input \(3, 4, 6, 5\) float64 and weight "
                                                           r"\(2, 4, 3, 3\): use a smaller batch than 3") as caught:
        op.forward(x, weight) if stage == "forward" else op.backward(on_device(np.ones((3, 2, 4, 3))))
    assert caught.value.__cause__ is out_of_memory and isinstance(caught.value, MemoryError)
