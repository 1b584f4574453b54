"""minicnn.kernels.settings: the one place that sets the CPU's threads and malloc, and its public switch.

Each check that changes a setting runs in a child process, so the suite's own settings stay as
they were.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn as mc
from minicnn.kernels import native

BLAS_THREADS = ("max(p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas')")


def run_python(code: str, **environment) -> list[str]:
    """What a child process running `code` prints, word by word (threadpoolctl and np imported)."""
    done = subprocess.run([sys.executable, "-c", "import threadpoolctl, numpy as np\n" + code],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **environment})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


needs_c_kernels = pytest.mark.skipif(native.library(np.float32) is None, reason="no C compiler builds the C kernels")


@pytest.mark.parametrize("threads", [0, -2, 1.5, True, "4"])
def test_set_num_threads_refuses_what_is_not_a_positive_int(threads):
    with pytest.raises(ValueError, match=r"set_num_threads: the number of threads must be a positive int, got"):
        mc.set_num_threads(threads)


@needs_c_kernels
def test_loading_the_c_kernels_changes_no_setting():
    before, after = run_python(f"from minicnn.kernels import native\nprint({BLAS_THREADS})\n"
                               f"native.library(np.float32)\nprint({BLAS_THREADS})")
    assert before == after


@needs_c_kernels
def test_the_cpu_backend_puts_blas_on_one_thread_before_the_first_op():
    (threads,) = run_python(f"import minicnn as mc\nmc.device('cpu').kernels\nprint({BLAS_THREADS})")
    assert threads == "1"


@needs_c_kernels
def test_set_num_threads_sets_the_c_kernels_threads_and_keeps_blas_on_one():
    code = (f"import minicnn as mc\nmc.set_num_threads(3)\nprint(mc.get_num_threads(), {BLAS_THREADS})\n"
            "mc.set_num_threads(1)\nprint(mc.get_num_threads())")
    three, blas, one = run_python(code)
    assert (three, blas, one) == ("3", "1", "1")


def test_without_the_c_kernels_set_num_threads_sets_blas():
    code = f"import minicnn as mc\nmc.set_num_threads(1)\nprint(mc.get_num_threads(), {BLAS_THREADS})"
    assert run_python(code, MINICNN_NATIVE="0") == ["1", "1"]
