#!/usr/bin/env bash
# The one prepared run for a machine with an NVIDIA GPU, from a copy of the repository and with no
# network: the card and versions, an offline install, the GPU test suite, the GPU benchmark, and a
# compute-sanitizer memcheck of the tests named "sanitizer", in about 7 minutes at most.
#
#   bash benchmarks/gpu_check.sh
#
# Logs and the benchmark's JSON go to $OUT when it is set (the device tool brings that folder
# back); otherwise logs to /tmp/minicnn-gpu-check and the JSON to benchmarks/results/. Every step
# runs whatever the one before it did, under its own timeout, all of them inside GPU_CHECK_BUDGET_S
# (default 420 s); a summary line per step ends the output. Exit status: 0 when every step that
# ran passed.
set -u
cd "$(dirname "$0")/.."

export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
LOG_DIR=${OUT:-/tmp/minicnn-gpu-check}
RESULTS_DIR=${OUT:-benchmarks/results}
mkdir -p "$LOG_DIR" "$RESULTS_DIR"
[ -d /usr/local/cuda/bin ] && PATH=$PATH:/usr/local/cuda/bin
SUMMARY=()

record() {  # step, verdict
    SUMMARY+=("$(printf '%-10s %s' "$1" "$2")")
}

limit_for() {  # a step's cap in seconds -> its timeout: the cap, or what is left of the budget
    local left=$((BUDGET - SECONDS))
    echo $(($1 < left ? $1 : left))
}

run_step() {  # name, timeout in seconds, command...: run it, tee its log, record its exit status
    local name=$1 limit=$2 started=$SECONDS rc
    shift 2
    if ((limit < 20)); then
        record "$name" "SKIPPED: under 20 s left of the ${BUDGET} s budget"
        return
    fi
    echo "== $name (timeout ${limit} s): $*" | tee "$LOG_DIR/$name.log"
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    local took=$((SECONDS - started))
    case $rc in
        0) record "$name" "ok (${took} s)" ;;
        5) record "$name" "NOTE: no test selected (pytest exit 5, ${took} s)" ;;
        124 | 137) record "$name" "TIMEOUT after ${limit} s" ;;
        *) record "$name" "FAILED: exit ${rc} (${took} s), see $LOG_DIR/$name.log" ;;
    esac
}

describe_machine() {
    timeout 30 nvidia-smi || echo "nvidia-smi failed"
    echo "python: $($PY --version 2>&1) at $(command -v "$PY")"
    "$PY" -c 'import numpy; print("numpy", numpy.__version__)'
    "$PY" -c 'import cupy; print("cupy", cupy.__version__, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion())' \
        || echo "cupy: not importable"
    "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN",
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
version = project["project"]["version"]
info = site / f"minicnn-{version}.dist-info"
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: minicnn\nVersion: {version}\n")
points = project["project"]["entry-points"]["minicnn"]
(info / "entry_points.txt").write_text("[minicnn]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
PYTHON
    export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
}

install_offline() {
    local pip=("$PY" -m pip install --no-deps --no-build-isolation --no-index -q)
    "${pip[@]}" -e . && return 0
    echo "editable install failed; trying a plain install"
    "${pip[@]}" . && return 0
    echo "pip install failed; using PYTHONPATH and a generated entry-points file instead"
    shim_install
}

setup() {  # in this shell, not under `timeout`: the fallback install exports PYTHONPATH
    describe_machine
    install_offline || return 1
    timeout 60 "$PY" -c 'import minicnn as mc; mc.create_model("lenet5"); mc.create_model("resnet20")
print("minicnn", mc.__version__, "from", mc.__file__, "with", len(mc.list_models()), "models")'
}

echo "== setup: the machine, then an offline install of minicnn"
setup >"$LOG_DIR/setup.log" 2>&1
rc=$?
cat "$LOG_DIR/setup.log"
if ((rc == 0)); then record setup "ok (${SECONDS} s)"; else record setup "FAILED: exit ${rc}, see $LOG_DIR/setup.log"; fi

run_step pytest-gpu "$(limit_for 240)" "$PY" -m pytest -m gpu tests -q -p no:cacheprovider --durations=5

limit=$(limit_for 200)
# The benchmark stops starting rows in time to finish the one under way before its timeout.
run_step benchmark "$limit" "$PY" benchmarks/gpu.py --device cuda --out "$RESULTS_DIR" \
    --time-budget $((limit > 80 ? limit - 40 : limit / 2))
written=$(grep -o '^results: [^ ]*\.json' "$LOG_DIR/benchmark.log" 2>/dev/null | tail -n 1 | cut -c10-)
[ -n "$written" ] && record "" "JSON: $written"

if [ ! -d tests/gpu ]; then
    record sanitizer "SKIPPED: no tests/gpu folder"
elif ! command -v compute-sanitizer >/dev/null; then
    record sanitizer "SKIPPED: compute-sanitizer not found"
else
    # CuPy's memory pool hands out slices of larger blocks, inside which memcheck sees no overrun:
    # a plain cudaMalloc per array (set_allocator(None)) lets it check every buffer's own bounds.
    run_step sanitizer "$(limit_for 120)" compute-sanitizer --tool memcheck --error-exitcode 1 "$PY" -c '
import sys, cupy, pytest
cupy.cuda.set_allocator(None)
sys.exit(pytest.main(["-m", "gpu", "tests/gpu", "-k", "sanitizer", "-q", "-p", "no:cacheprovider"]))'
fi

echo
echo "== summary ($SECONDS s of the ${BUDGET} s budget)"
printf '%s\n' "${SUMMARY[@]}" | tee "$LOG_DIR/summary.txt"
! printf '%s\n' "${SUMMARY[@]}" | grep -qE 'FAILED|TIMEOUT'
