"""The host harness for the CUDA kernels' element functions (cuda_harness.cpp), built once."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from minicnn.kernels import cuda
from minicnn.kernels.window import Window

HARNESS = Path(__file__).with_name("cuda_harness.cpp")


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    """`harness(name, *args)` runs the harness function `name` (float64 only): arrays go as
    pointers, np.int64 as long long, other ints as int, and a Window as a pointer to its fourteen
    ints. The library is built with warnings as errors."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the kernel harness")
    library_path = tmp_path_factory.mktemp("harness") / "cuda_harness.so"
    command = [compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
               f"-I{cuda.SOURCE_DIR}", "-o", str(library_path), str(HARNESS)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    library = ctypes.CDLL(str(library_path))

    def run(name: str, *args) -> None:
        converted, keep = [], []
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
