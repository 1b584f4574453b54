#!/usr/bin/env bash
# The one prepared run for a machine with an NVIDIA GPU, from a copy of the repository and with no
# network, in four steps within GPU_CHECK_BUDGET_S (default 420 s):
#   setup      the card and versions, an offline install, every CUDA kernel compiled through the
#              library's own path and one op run on the GPU against the CPU (60 s of 420)
#   pytest-gpu `pytest -m gpu tests`: every op, layer and model on CuPy against NumPy (200 s)
#   sanitizer  compute-sanitizer memcheck of the small tests named "sanitizer" (70 s)
#   benchmark  benchmarks/gpu.py against cuDNN and PyTorch (the rest: 90 s)
#
#   bash benchmarks/gpu_check.sh
#
# The shares scale with the budget and are reserved: a step that overruns takes from the next
# step, never from the ones after it. MINICNN_REQUIRE_GPU=1 is set for every step, so no usable GPU is a failure that
# names CUDA's error rather than a run of skipped tests, and a pytest step fails unless every gpu
# test it collected ran (tests/conftest.py), at least GPU_CHECK_MIN_TESTS of them in pytest-gpu.
# When setup fails, pytest-gpu runs only to show how (it stops at the third failure) and the
# sanitizer and benchmark do not run. GPU_CHECK_SKIP_INSTALL=1 uses the minicnn that python
# already imports instead of installing.
#
# Logs, per-pytest-step JUnit XML and the benchmark's JSON go to $OUT when it is set (the device
# tool brings that folder back); otherwise logs to /tmp/minicnn-gpu-check and the JSON to
# benchmarks/results/. The output ends with a summary (one line per step, with passed, failed and
# skipped counts for the pytest steps) and a verdict. Exit status: 0 only when every step ran and
# passed; a missing compute-sanitizer skips that step without failing the run.
set -u
cd "$(dirname "$0")/.."

export PYTHONUNBUFFERED=1 MINICNN_REQUIRE_GPU=1
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
# Each step's share, in proportion to the default 420 s: 60, 200, 70 and 90 s.
SETUP_S=$((BUDGET * 60 / 420)) TESTS_S=$((BUDGET * 200 / 420)) SANITIZER_S=$((BUDGET * 70 / 420))
BENCHMARK_S=$((BUDGET - SETUP_S - TESTS_S - SANITIZER_S))
MIN_TESTS=${GPU_CHECK_MIN_TESTS:-400}  # 461 gpu tests when this was set: a floor against silently lost ones
LOG_DIR=${OUT:-/tmp/minicnn-gpu-check}
RESULTS_DIR=${OUT:-benchmarks/results}
mkdir -p "$LOG_DIR" "$RESULTS_DIR"
[ -d /usr/local/cuda/bin ] && PATH=$PATH:/usr/local/cuda/bin
SUMMARY=()
FAILED_STEPS=()

record() {  # step, verdict; a verdict starting FAILED, TIMEOUT or NOT RUN fails the run
    SUMMARY+=("$(printf '%-10s %s' "$1" "$2")")
    [[ $2 =~ ^(FAILED|TIMEOUT|NOT\ RUN) ]] && FAILED_STEPS+=("$1")
}

limit_for() {  # this step's share, the shares reserved for the steps after it -> its timeout
    local left=$((BUDGET - SECONDS - $2))
    echo $(($1 < left ? $1 : left))
}

pytest_counts() {  # a JUnit XML file from pytest -> "P passed, F failed, S skipped (of N)"
    local none="no counts: no result file (pytest stopped before its tests, or was killed)"
    "$PY" - "$1" <<'PYTHON' 2>/dev/null || echo "$none"
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
n = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
failed = n["failures"] + n["errors"]
print(f"{n['tests'] - failed - n['skipped']} passed, {failed} failed, {n['skipped']} skipped (of {n['tests']})")
PYTHON
}

run_step() {  # name, timeout in seconds, command...: run it, tee its log, record its exit status
    local name=$1 limit=$2 started=$SECONDS rc
    shift 2
    if ((limit < 20)); then
        record "$name" "NOT RUN: under 20 s left of the ${BUDGET} s budget"
        return
    fi
    rm -f "$LOG_DIR/$name.xml"
    echo "== $name (timeout ${limit} s): $*" | tee "$LOG_DIR/$name.log"
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    local took=$((SECONDS - started)) counts=""
    [[ $name == benchmark ]] || counts=": $(pytest_counts "$LOG_DIR/$name.xml")"
    case $rc in
        0) record "$name" "ok (${took} s)$counts" ;;
        5) record "$name" "FAILED: no test selected (pytest exit 5, ${took} s)" ;;
        124 | 137) record "$name" "TIMEOUT after ${limit} s$counts" ;;
        *) record "$name" "FAILED: exit ${rc} (${took} s)$counts, see $LOG_DIR/$name.log" ;;
    esac
    # pytest's reason for stopping, and the required mode's tally of the gpu tests
    while IFS= read -r line; do record "" "$line"; done \
        < <(grep -E '^(Exit: |MINICNN_REQUIRE_GPU: )' "$LOG_DIR/$name.log" | cut -c1-400)
}

describe_machine() {
    timeout 30 nvidia-smi || echo "nvidia-smi failed"
    echo "python: $($PY --version 2>&1) at $(command -v "$PY")"
    "$PY" -c 'import numpy; print("numpy", numpy.__version__)'
    "$PY" -c 'import cupy; print("cupy", cupy.__version__, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion())' \
        || echo "cupy: not importable"
    "$PY" -c 'from cupy.cuda import nccl; print("NCCL", nccl.get_version() if nccl.available else "not available")' \
        || echo "NCCL: cupy.cuda.nccl not importable"
    timeout 30 "$PY" -c 'import mpi4py; from mpi4py import MPI
print("mpi4py", mpi4py.__version__, MPI.Get_library_version().splitlines()[0])' \
        || echo "mpi4py: not importable (the gpu tests in tests/distributed that start mpiexec skip, failing pytest-gpu)"
    timeout 30 "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN",
torch.backends.cudnn.version(), "GPU", torch.cuda.is_available() and torch.cuda.get_device_name(0))' \
        || echo "torch: not importable"
    nvcc --version 2>/dev/null | tail -n 2 || echo "nvcc: not found"
    compute-sanitizer --version 2>/dev/null | head -n 2 || echo "compute-sanitizer: not found"
}

shim_install() {
    # No pip install worked: put the packages on PYTHONPATH, with a dist-info folder that declares
    # pyproject.toml's entry points, so the architecture plugins (and create_model) are found.
    local site=/tmp/minicnn-site
    rm -rf "$site" && mkdir -p "$site"
    "$PY" - "$site" <<'PYTHON' || return 1
import pathlib, sys, tomllib

site, project = pathlib.Path(sys.argv[1]), tomllib.loads(pathlib.Path("pyproject.toml").read_text())
for package, folder in project["tool"]["setuptools"]["package-dir"].items():
    (site / package).symlink_to(pathlib.Path(folder).resolve())
name, version = project["project"]["name"], project["project"]["version"]
info = site / f"{name.replace('-', '_')}-{version}.dist-info"
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
points = project["project"]["entry-points"]["minicnn"]
(info / "entry_points.txt").write_text("[minicnn]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
PYTHON
    export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
}

install_offline() {
    if [ -n "${GPU_CHECK_SKIP_INSTALL:-}" ]; then
        echo "GPU_CHECK_SKIP_INSTALL is set: no install, using the minicnn that $PY imports"
        return 0
    fi
    local pip=("$PY" -m pip install --no-deps --no-build-isolation --no-index -q)
    "${pip[@]}" -e . && return 0
    echo "editable install failed; trying a plain install"
    "${pip[@]}" . && return 0
    echo "pip install failed; using PYTHONPATH and a generated entry-points file instead"
    shim_install
}

# Before the tests spend minutes: a usable GPU, every kernel compiled the way the library compiles it
# (NVRTC through cupy.RawModule), and one op launched and compared with the CPU.
read -r -d '' PROBE_GPU <<'PYTHON'
import sys
import time

import numpy as np

import minicnn as mc
import minicnn.functional as F
from minicnn import backend

reason = backend.gpu_unavailable_reason()
if reason is not None:
    sys.exit(f"setup failed: no usable GPU, so no GPU step can run: {reason}")
from minicnn.kernels import cuda

started = time.perf_counter()
try:
    names = cuda.compile_all()
except Exception as error:
    hint = ""
    if "CUDA headers" in str(error):
        hint = (" (NVRTC needs the CUDA runtime headers: pip install 'cupy-cuda13x[ctk]' brings them, or set"
                " CUDA_PATH to a CUDA toolkit with include/cuda_runtime.h)")
    sys.exit(f"setup failed: minicnn.kernels.cuda.compile_all() raised {type(error).__name__}: {error}{hint}")
print(f"compiled {len(names)} CUDA kernels in {time.perf_counter() - started:.1f} s: {', '.join(names)}")
x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(np.float32)
on_gpu = F.max_pool2d(mc.tensor(x).to("cuda"), 3, 2, ceil_mode=True)
on_cpu = F.max_pool2d(mc.tensor(x), 3, 2, ceil_mode=True)
if on_gpu.device != mc.device("cuda") or not np.array_equal(on_gpu.numpy(), on_cpu.numpy()):
    sys.exit(f"setup failed: max_pool2d on {on_gpu.device} differs from the CPU's:\n{on_gpu.numpy()}\n{on_cpu.numpy()}")
print("max_pool2d of a (2, 3, 9, 8) batch, 3x3 stride 2 ceil mode, on cuda:0 equals the CPU's")
PYTHON

setup() {  # in this shell, not under one `timeout`: the fallback install exports PYTHONPATH
    describe_machine
    install_offline || { echo "setup failed: no install of minicnn worked"; return 1; }
    timeout 60 "$PY" -c 'import minicnn as mc; mc.create_model("lenet5"); mc.create_model("resnet20")
print("minicnn", mc.__version__, "from", mc.__file__, "with", len(mc.list_models()), "models")' \
        || { echo "setup failed: minicnn does not import, or cannot build lenet5 and resnet20"; return 1; }
    local left=$((SETUP_S - SECONDS))
    timeout -k 10 $((left > 30 ? left : 30)) "$PY" -c "$PROBE_GPU"
}

echo "== setup: the machine, an offline install of minicnn, the CUDA kernels compiled and one op run"
setup >"$LOG_DIR/setup.log" 2>&1
rc=$?
cat "$LOG_DIR/setup.log"
if ((rc == 0)); then
    record setup "ok (${SECONDS} s)"
else
    record setup "FAILED: exit ${rc} (${SECONDS} s), see $LOG_DIR/setup.log"
    while IFS= read -r line; do record "" "$line"; done < <(grep '^setup failed: ' "$LOG_DIR/setup.log" | cut -c1-400)
fi

pytest_args=(-m gpu tests -q -p no:cacheprovider --durations=5 --junitxml="$LOG_DIR/pytest-gpu.xml")
((rc == 0)) || pytest_args+=(--maxfail=3)
MINICNN_REQUIRE_GPU_TESTS=$MIN_TESTS run_step pytest-gpu "$(limit_for $TESTS_S $((SANITIZER_S + BENCHMARK_S)))" \
    "$PY" -m pytest "${pytest_args[@]}"

if ((rc != 0)); then
    record sanitizer "NOT RUN: the setup step failed"
    record benchmark "NOT RUN: the setup step failed"
else
    if ! command -v compute-sanitizer >/dev/null; then
        record sanitizer "SKIPPED: compute-sanitizer not found (no memcheck in this run)"
    else
        # CuPy's memory pool hands out slices of larger blocks, inside which memcheck sees no overrun:
        # a plain cudaMalloc per array (set_allocator(None)) lets it check every buffer's own bounds.
        run_step sanitizer "$(limit_for $SANITIZER_S "$BENCHMARK_S")" \
            compute-sanitizer --tool memcheck --error-exitcode 1 "$PY" -c '
import sys, cupy, pytest
cupy.cuda.set_allocator(None)
sys.exit(pytest.main(["-m", "gpu", "tests/gpu", "-k", "sanitizer", "-q", "-p", "no:cacheprovider",
                      "--junitxml", sys.argv[1]]))' "$LOG_DIR/sanitizer.xml"
    fi

    limit=$(limit_for $((BUDGET - SECONDS)) 0)
    # The benchmark stops starting rows in time to finish the one under way before its timeout.
    run_step benchmark "$limit" "$PY" benchmarks/gpu.py --device cuda --out "$RESULTS_DIR" \
        --time-budget $((limit > 80 ? limit - 40 : limit / 2))
    written=$(grep -o '^results: [^ ]*\.json' "$LOG_DIR/benchmark.log" 2>/dev/null | tail -n 1 | cut -c10-)
    [ -n "$written" ] && record "" "JSON: $written"
fi

echo
echo "== summary ($SECONDS s of the ${BUDGET} s budget; shares: setup $SETUP_S, pytest-gpu $TESTS_S," \
    "sanitizer $SANITIZER_S, benchmark $BENCHMARK_S)"
if ((${#FAILED_STEPS[@]} == 0)); then
    record verdict "PASSED: every step ran and passed"
else
    record verdict "FAILED: ${FAILED_STEPS[*]}"
fi
printf '%s\n' "${SUMMARY[@]}" | tee "$LOG_DIR/summary.txt"
((${#FAILED_STEPS[@]} == 0))
