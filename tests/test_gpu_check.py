"""The GPU check's own trustworthiness: the required mode of tests/conftest.py (MINICNN_REQUIRE_GPU=1)
and benchmarks/gpu_check.sh, which sets it. A run lent a GPU for minutes must fail, naming CUDA's
error, when the GPU is not usable, rather than pass on skipped tests.

Each runs pytest or the script in a fresh process, as the GPU machine does. The required mode's
tally is checked with a GPU faked usable (check_cuda_device patched), the only way to reach it here.
"""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minicnn.backend import gpu_unavailable_reason

ROOT = Path(__file__).resolve().parents[1]
REASON = gpu_unavailable_reason()
needs_no_gpu = pytest.mark.skipif(REASON is None, reason="a usable GPU here: this checks the run without one")


def environment(**variables) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINICNN_REQUIRE_GPU", "GPU_CHECK_"))}
    env.pop("OUT", None)
    return env | variables


def run(command, **variables) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=environment(**variables), capture_output=True, text=True,
                          timeout=300)


@needs_no_gpu
def test_the_required_mode_fails_at_the_start_naming_why_no_gpu_is_usable():
    result = run([sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu/test_activation.py", "-q",
                  "-p", "no:cacheprovider"], MINICNN_REQUIRE_GPU="1")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"MINICNN_REQUIRE_GPU=1 and no usable GPU, so no gpu test can run: {REASON}" in output
    assert " passed" not in output and " skipped" not in output


def test_without_the_required_mode_gpu_tests_skip_and_the_run_passes():
    result = run([sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu/test_activation.py", "-q",
                  "-p", "no:cacheprovider"])
    assert result.returncode == 0, result.stdout + result.stderr
    if REASON is not None:
        assert re.search(r"^\d+ skipped in ", result.stdout, re.MULTILINE), result.stdout


FAKE_SUITE = """
    import pytest

    @pytest.mark.gpu
    def test_runs():
        pass

    @pytest.mark.gpu
    def test_skips():
        pytest.skip("no kernel for this yet")

    def test_on_the_cpu():
        pass
"""


def run_with_a_usable_gpu(tmp_path, *args, **variables) -> subprocess.CompletedProcess:
    """pytest under tests/conftest.py's hooks on FAKE_SUITE, with check_cuda_device patched to succeed."""
    suite = tmp_path / "test_fake_suite.py"
    suite.write_text(textwrap.dedent(FAKE_SUITE))
    code = ("import sys, pytest, minicnn.backend as backend\n"
            "backend.check_cuda_device = lambda target: None\n"
            "sys.exit(pytest.main(sys.argv[1:]))")
    options = ["-p", "tests.conftest", "-c", "pyproject.toml", "--rootdir", str(tmp_path), "-q",
               "-p", "no:cacheprovider"]
    return run([sys.executable, "-c", code, *options, str(suite), *args], MINICNN_REQUIRE_GPU="1", **variables)


def test_the_required_mode_fails_when_a_gpu_test_skips_and_names_it(tmp_path):
    result = run_with_a_usable_gpu(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("MINICNN_REQUIRE_GPU: 2 gpu tests collected, 1 ran, 1 skipped, at least 1 required: FAILED: 1 skipped"
            in result.stdout)
    assert "skipped test_fake_suite.py::test_skips: Skipped: no kernel for this yet" in result.stdout


def test_the_required_mode_fails_when_fewer_gpu_tests_ran_than_required(tmp_path):
    result = run_with_a_usable_gpu(tmp_path, "-k", "runs or cpu", MINICNN_REQUIRE_GPU_TESTS="3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 ran, 0 skipped, at least 3 required: FAILED: 1 ran, fewer than the 3" in result.stdout


def test_the_required_mode_passes_when_every_gpu_test_ran(tmp_path):
    result = run_with_a_usable_gpu(tmp_path, "-k", "runs or cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MINICNN_REQUIRE_GPU: 1 gpu tests collected, 1 ran, 0 skipped, at least 1 required: ok" in result.stdout


@needs_no_gpu
@pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="CuPy is not installed (CI installs it)")
def test_the_gpu_check_fails_without_a_usable_gpu_and_says_why(tmp_path):
    result = run(["bash", "benchmarks/gpu_check.sh"], OUT=str(tmp_path), GPU_CHECK_SKIP_INSTALL="1",
                 GPU_CHECK_BUDGET_S="120", PYTHON=sys.executable)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "CUDA" in REASON and f"setup failed: no usable GPU, so no GPU step can run: {REASON}" in output
    summary = (tmp_path / "summary.txt").read_text()
    assert re.search(r"^pytest-gpu +FAILED: exit 1 .*no counts", summary, re.MULTILINE), summary
    assert f"Exit: MINICNN_REQUIRE_GPU=1 and no usable GPU, so no gpu test can run: {REASON}" in summary
    assert re.search(r"^sanitizer +NOT RUN: the setup step failed", summary, re.MULTILINE), summary
    assert summary.rstrip().endswith("verdict    FAILED: setup pytest-gpu sanitizer benchmark"), summary
