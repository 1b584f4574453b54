"""minicnn.kernels.signatures and the Window2d struct: the one description of each compiled kernel
and of the window geometry, checked against the C and CUDA sources that it describes.

ctypes and CuPy pass whatever they are given; only these checks stand between a signature that
drifted from its source and a kernel reading the wrong memory.
"""

import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest

from minicnn.kernels import cuda, native, signatures
from minicnn.kernels.window import STRUCT_DTYPE, STRUCT_FIELDS, Window, Window2d

HEADER = native.WINDOW_HEADER
# A parameter's type (const dropped) in each language, as the table spells it.
C_TYPES = {"REAL*": "real*", "unsigned char*": "byte*", "int": "int", "long": "long", "double": "double",
           "Window2d": "window"}
CUDA_TYPES = {"T*": "real*", "int*": "int*", "int": "int", "long long": "long", "Window2d": "window"}


def as_table_entry(declaration: str, types: dict) -> tuple[str, str]:
    """("real*", "x") for "const REAL *x" or "const T* x"."""
    *words, name = declaration.replace("const ", "").replace("*", "* ").split()
    return types[" ".join(words).replace(" *", "*")], name


def declared(pattern: str, text: str, types: dict) -> dict[str, tuple]:
    """{function: its parameters as table entries} for every function `pattern` finds in `text`."""
    return {name: tuple(as_table_entry(p, types) for p in parameters.split(","))
            for name, parameters in re.findall(pattern, text, flags=re.S | re.M)}


def test_the_c_table_is_every_exported_c_function_as_its_source_declares_it():
    text = "".join((native.SOURCE_DIR / name).read_text() for name in native.SOURCES)
    found = declared(r"^int (\w+)\((.*?)\) \{", text, C_TYPES)  # static helpers are not exported
    assert found == {name: signature.arguments for name, signature in signatures.C_KERNELS.items()}


@pytest.mark.parametrize("source", sorted(signatures.CUDA_KERNELS))
def test_the_cuda_table_is_every_kernel_as_its_source_declares_it(source):
    found = declared(r"^template <typename T>\s*__global__ void (\w+)\((.*?)\) \{", cuda.source(source), CUDA_TYPES)
    assert found == {name: signature.arguments for name, signature in signatures.CUDA_KERNELS[source].items()}


def test_every_type_has_a_ctypes_and_a_cuda_form():
    assert sorted(native.ARGTYPES) == sorted(cuda.PACKERS) == sorted(signatures.TYPES)


def test_the_c_functions_ctypes_signatures_are_made_from_the_table():
    library = native.library(np.float64)
    if library is None:
        pytest.skip("no C compiler builds the C kernels")
    array, long, int_ = native._Array, ctypes.c_long, ctypes.c_int
    assert library.conv_forward.argtypes == [array] * 5 + [Window2d, long, int_]
    assert library.momentum_step.argtypes == [array] * 3 + [long] + [ctypes.c_double] * 3
    assert all(getattr(library, name).errcheck is native._check for name in signatures.C_KERNELS)


def test_a_failed_c_status_raises_naming_the_kernel():
    function = ctypes.CDLL(None).abs  # any C function: only its name is read
    assert native._check(0, function, ()) == 0
    with pytest.raises(ValueError, match="the C kernel abs does not take this stride"):
        native._check(native.UNSUPPORTED, function, ())
    with pytest.raises(MemoryError, match="the C kernel abs ran out of memory"):
        native._check(-1, function, ())


def test_the_c_kernels_take_arrays_none_numbers_and_windows_as_they_are():
    library = native.library(np.float64)
    if library is None:
        pytest.skip("no C compiler builds the C kernels")
    x = np.arange(-3.0, 5.0).reshape(1, 2, 2, 2)
    y = np.empty_like(x)
    library.relu_forward(x, y, x.size)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    read_only = x.copy()
    read_only.flags.writeable = False  # takes the slower address
    library.relu_forward(read_only, y, x.size)
    window = Window.over(x.shape, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), (2, 2))
    out = np.empty((1, 3, 2, 2))
    library.conv_forward(x, np.ones((3, 2, 1, 1)), None, None, out, window, 3, True)  # bias and mask: NULL
    np.testing.assert_array_equal(out, np.broadcast_to(np.maximum(x.sum(axis=1, keepdims=True), 0), out.shape))


def test_cuda_launches_are_packed_by_the_table_and_counted(monkeypatch):
    window = Window.over((2, 3, 8, 8), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), (8, 8))
    x = np.zeros(3)
    packers = cuda._PACKING["pool.cu", "avg_pool"]
    packed = [pack(arg) for pack, arg in zip(packers, (x, x, 9, True, window))]
    assert packed[:2] == [x, x] and type(packed[2]) is np.int64 and type(packed[3]) is np.int32
    assert packed[4] is window.struct_array
    with pytest.raises(TypeError, match=r"avg_pool\(real\* x, .* window g\) takes 5 arguments, got 4"):
        cuda._launch("pool.cu", "avg_pool", x, 0, x, x, 9, window)


def test_a_declaration_with_an_unknown_type_is_refused():
    with pytest.raises(ValueError, match="'float x' is not '<type> <name>'"):
        signatures._parse("scale(real* y, float x)")


def header_fields() -> list[tuple[str, str]]:
    """(C type, name) of each field of the struct in window.h, in order."""
    body = re.search(r"typedef struct Window2d \{(.*?)\} Window2d;", HEADER.read_text(), flags=re.S).group(1)
    return [(kind, name.strip()) for kind, names in re.findall(r"(\w+) ([\w, ]+);", body) for name in names.split(",")]


def test_the_python_mirror_lists_the_headers_fields_in_order_all_ints():
    assert header_fields() == [("int", name) for name in STRUCT_FIELDS]
    assert ctypes.sizeof(Window2d) == STRUCT_DTYPE.itemsize == 4 * len(STRUCT_FIELDS)


def test_the_c_compiler_lays_the_struct_out_as_the_mirror_does(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    fields = "".join(f'    printf("%zu ", offsetof(Window2d, {name}));\n' for name in STRUCT_FIELDS)
    program = tmp_path / "layout.c"
    program.write_text(f'#include <stddef.h>\n#include <stdio.h>\n#include "{HEADER}"\n'
                       f'int main(void) {{\n{fields}    printf("%zu", sizeof(Window2d));\n    return 0;\n}}\n')
    built = subprocess.run([compiler, str(program), "-o", str(tmp_path / "layout")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    printed = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True).stdout.split()
    expected = [STRUCT_DTYPE.fields[name][1] for name in STRUCT_FIELDS] + [STRUCT_DTYPE.itemsize]
    assert [int(value) for value in printed] == expected


def test_c_and_cuda_share_the_one_struct():
    """Defined once, in window.h, which the C kernels and the CUDA kernels both include."""
    sources = [*native.SOURCE_DIR.glob("*.[ch]"), *cuda.SOURCE_DIR.glob("*.cu*")]
    assert [path.name for path in sources if "struct Window2d" in path.read_text()] == []
    including = sorted(path.name for path in sources if '#include "../window.h"' in path.read_text())
    assert including == ["conv.c", "pool.c", "window.cuh"]
    assert cuda.source("conv.cu").count("typedef struct Window2d {") == 1


def test_a_window_packs_its_fields_into_the_struct_once():
    window = Window(n=2, c=3, h=5, w=7, kh=11, kw=13, sh=17, sw=19, dh=23, dw=29, pads=(31, 37, 41, 43), oh=47, ow=53)
    values = {"n": 2, "c": 3, "h": 5, "w": 7, "kh": 11, "kw": 13, "sh": 17, "sw": 19, "dh": 23, "dw": 29,
              "pad_top": 31, "pad_left": 41, "oh": 47, "ow": 53}
    struct = window._as_parameter_
    assert {name: getattr(struct, name) for name in STRUCT_FIELDS} == values
    assert window._as_parameter_ is struct  # made once per window
    array = window.struct_array
    assert array.shape == (1,) and array.dtype == STRUCT_DTYPE and array.tolist() == [tuple(values.values())]
    assert array.ctypes.data == ctypes.addressof(struct)  # the same bytes


def test_a_window_beyond_32_bit_ints_is_refused_not_wrapped():
    window = Window(n=2**31, c=1, h=1, w=1, kh=1, kw=1, sh=1, sw=1, dh=1, dw=1, pads=(0, 0, 0, 0), oh=1, ow=1)
    with pytest.raises(ValueError, match="n=2147483648.* beyond the compiled kernels' 32-bit ints"):
        window.struct_array
