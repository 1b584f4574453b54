"""The host harness for the CUDA kernels (cuda_harness.cpp), built once."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from minicnn.kernels import cuda
from minicnn.kernels.window import STRUCT_DTYPE, Window2d

HARNESS = Path(__file__).with_name("cuda_harness.cpp")
# (blocks, threads per block) of the harness's launches unless a test gives its own: odd, and
# small enough that a few hundred elements take every thread round its loop more than once.
SMALL_GRID = (3, 7)
# The harness's C++ type of each signature type (minicnn.kernels.signatures), float64 kernels.
HARNESS_TYPES = {"real*": ctypes.c_void_p, "int*": ctypes.c_void_p, "int": ctypes.c_int, "long": ctypes.c_longlong,
                 "window": Window2d}


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    """`harness(name, *args, grid=SMALL_GRID)` runs kernel `name` (float64 only) as a launch of
    grid = (blocks, threads per block) would, its arguments typed by the kernel's signature in
    cuda.KERNELS: arrays as pointers, int as int, long as long long, the window (a Window, or the
    struct array a launch packs) as the Window2d struct by value. The default grid is far smaller
    than the tests' tensors, so every thread goes round its grid-stride loop many times. The
    library is built with warnings as errors."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the kernel harness")
    library_path = tmp_path_factory.mktemp("harness") / "cuda_harness.so"
    command = [compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
               f"-I{cuda.SOURCE_DIR}", "-o", str(library_path), str(HARNESS)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    library = ctypes.CDLL(str(library_path))
    signatures = {name: signature for kernels in cuda.KERNELS.values() for name, signature in kernels.items()}
    for name, signature in signatures.items():
        function = getattr(library, name)
        function.argtypes = [ctypes.c_int, ctypes.c_int, *(HARNESS_TYPES[kind] for kind, _ in signature.arguments)]
        function.restype = None

    def run(name: str, *args, grid: tuple[int, int] = SMALL_GRID) -> None:
        converted = []
        for (kind, _), arg in zip(signatures[name].arguments, args, strict=True):
            if kind.endswith("*"):
                element_type = np.int32 if kind == "int*" else np.float64
                assert arg.flags.c_contiguous and arg.dtype == element_type, (name, arg.dtype)
                converted.append(arg.ctypes.data)
            elif isinstance(arg, np.ndarray):
                assert kind == "window" and arg.dtype == STRUCT_DTYPE and arg.size == 1, (name, kind, arg.dtype)
                converted.append(Window2d.from_buffer_copy(arg))
            else:  # a Window goes as its struct (ctypes reads Window._as_parameter_)
                converted.append(arg if kind == "window" else int(arg))
        getattr(library, name)(*grid, *converted)

    return run
