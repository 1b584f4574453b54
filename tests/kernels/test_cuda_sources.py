"""The CUDA sources compile, without a GPU: with nvcc for Hopper (warnings as errors), and with
NVRTC exactly as minicnn.kernels.cuda hands them to cupy.RawModule at run time.

What the kernels compute is tested by test_cuda_elements.py (host harness) here, and by
tests/gpu on a machine with a GPU.
"""

import os
import re
import shutil
import subprocess

import pytest

from minicnn.kernels import cuda

SOURCES = sorted(path.name for path in cuda.SOURCE_DIR.glob("*.cu"))


def test_every_source_is_registered_with_every_kernel_it_defines():
    assert SOURCES == sorted(cuda.KERNELS)
    for name in SOURCES:
        defined = re.findall(r"^__global__ void (\w+)\(", cuda.source(name).replace("template <typename T>\n", ""),
                             flags=re.MULTILINE)
        assert sorted(defined) == sorted(cuda.KERNELS[name]), name


@pytest.mark.parametrize("name", SOURCES)
def test_nvcc_compiles_each_source_for_sm_90_with_warnings_as_errors(name, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        if os.environ.get("MINICNN_REQUIRE_NVCC"):  # set by .ci/run: CI must compile every kernel
            pytest.fail("nvcc is not on PATH, and MINICNN_REQUIRE_NVCC is set")
        pytest.skip("nvcc is not installed")
    command = [nvcc, "-arch=sm_90", "-cubin", "--Werror", "all-warnings", "-std=c++17", f"-I{cuda.SOURCE_DIR}",
               "-o", str(tmp_path / "kernel.cubin"), str(cuda.SOURCE_DIR / name)]
    built = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "kernel.cubin").stat().st_size > 0


@pytest.mark.parametrize("name", SOURCES)
def test_nvrtc_compiles_the_runtime_source_and_finds_every_kernel(name, tmp_path, monkeypatch):
    """The expanded source (no include path given: it must stand alone), the module's compile
    options, and one lowered name per (kernel, dtype) that RawModule.get_function will ask for."""
    pytest.importorskip("cupy")
    from cupy.cuda import nvrtc

    try:
        nvrtc.getVersion()
    except Exception as error:  # the NVRTC library is a separate wheel (nvidia-cuda-nvrtc)
        pytest.skip(f"NVRTC is not available: {error}")
    monkeypatch.chdir(tmp_path)  # NVRTC also resolves quoted includes from the working directory
    expressions = cuda.name_expressions(name)
    program = nvrtc.createProgram(cuda.source(name), name, (), ())
    try:
        for expression in expressions:
            nvrtc.addNameExpression(program, expression)
        options = (*cuda.COMPILE_OPTIONS, "-arch=sm_90", "--device-as-default-execution-space")
        try:
            nvrtc.compileProgram(program, options)
        except nvrtc.NVRTCError:
            pytest.fail(nvrtc.getProgramLog(program))
        assert nvrtc.getProgramLog(program).strip("\x00\n ") == ""  # no warnings (NVRTC 13 has no -Werror)
        lowered = {expression: nvrtc.getLoweredName(program, expression) for expression in expressions}
        assert all(name.startswith("_Z") for name in lowered.values()), lowered
        assert len(set(lowered.values())) == len(expressions)
        assert len(nvrtc.getCUBIN(program)) > 0
    finally:
        nvrtc.destroyProgram(program)
