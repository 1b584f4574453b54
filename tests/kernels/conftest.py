"""The host harness for the CUDA kernels (cuda_harness.cpp), built once."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from minicnn.kernels import cuda
from minicnn.kernels.window import Window

HARNESS = Path(__file__).with_name("cuda_harness.cpp")
# (blocks, threads per block) of the harness's launches unless a test gives its own: odd, and
# small enough that a few hundred elements take every thread round its loop more than once.
SMALL_GRID = (3, 7)


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    """`harness(name, *args, grid=SMALL_GRID)` runs kernel `name` (float64 only) as a launch of
    grid = (blocks, threads per block) would: arrays go as pointers, np.int64 as long long, other
    ints as int, and a Window as a pointer to its fourteen ints. The default grid is far smaller
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

    def run(name: str, *args, grid: tuple[int, int] = SMALL_GRID) -> None:
        converted, keep = [ctypes.c_int(grid[0]), ctypes.c_int(grid[1])], []
        for arg in args:
            if isinstance(arg, Window):
                arg = np.array(arg.kernel_args(), dtype=np.int32)
            if isinstance(arg, np.ndarray):
                assert arg.flags.c_contiguous and arg.dtype in (np.float64, np.int32), (name, arg.dtype)
                keep.append(arg)
                converted.append(ctypes.c_void_p(arg.ctypes.data))
            elif isinstance(arg, np.int64):
                converted.append(ctypes.c_longlong(int(arg)))
            else:
                converted.append(ctypes.c_int(int(arg)))
        function = getattr(library, name)
        function.restype = None
        function(*converted)

    return run
