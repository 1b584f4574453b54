"""Fixtures shared across the test folders, and the required-GPU mode.

`gpu`-marked tests skip where no GPU is usable, so that CI on machines without one stays green. On
a machine lent for its GPU a skip would pass for a result: with MINICNN_REQUIRE_GPU=1 (which
benchmarks/gpu_check.sh sets) the session fails at its start when no GPU is usable, naming CUDA's
error, and at its end unless every collected `gpu` test ran, none skipped, and at least
MINICNN_REQUIRE_GPU_TESTS of them (default 1).
"""

import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minicnn.backend import gpu_unavailable_reason

SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
UNREACHABLE_MIRROR = "http://127.0.0.1:9/"  # the discard port: nothing listens there
REQUIRE_GPU = "MINICNN_REQUIRE_GPU"
REQUIRED_GPU_TESTS = "MINICNN_REQUIRE_GPU_TESTS"


def gpu_required() -> bool:
    return os.environ.get(REQUIRE_GPU, "") not in ("", "0")


@pytest.hookimpl(trylast=True)  # after the other plugins' session start (junitxml's clock), so theirs can finish
def pytest_sessionstart(session):
    if not gpu_required():
        return
    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.exit(f"{REQUIRE_GPU}=1 and no usable GPU, so no gpu test can run: {reason}", returncode=1)
    floor = os.environ.get(REQUIRED_GPU_TESTS, "1")
    if not floor.isdigit():
        pytest.exit(f"{REQUIRED_GPU_TESTS}={floor!r}: give the least number of gpu tests that must run, e.g. 1",
                    returncode=4)
    session.config.pluginmanager.register(RequiredGpuRun(int(floor)), "minicnn-required-gpu")


class RequiredGpuRun:
    """The required mode's tally of the `gpu` tests: what was collected, what ran, what skipped and
    why. Registered as a plugin only in that mode."""

    def __init__(self, floor: int):
        self.floor = floor
        self.collected: set[str] = set()
        self.ran: set[str] = set()
        self.skipped: dict[str, str] = {}
        self.problems: list[str] = []

    def pytest_collection_finish(self, session):
        self.collected = {item.nodeid for item in session.items if item.get_closest_marker("gpu")}

    def pytest_runtest_logreport(self, report):
        if report.nodeid not in self.collected:
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.setdefault(report.nodeid, reason)
        elif report.when == "call":
            self.ran.add(report.nodeid)

    def pytest_sessionfinish(self, session):
        ran = len(self.ran - self.skipped.keys())
        unfinished = len(self.collected) - ran - len(self.skipped)
        if self.skipped:
            self.problems.append(f"{len(self.skipped)} skipped")
        if unfinished:
            self.problems.append(f"{unfinished} never reached their test body (setup error or an interrupted run)")
        if ran < self.floor:
            self.problems.append(f"{ran} ran, fewer than the {self.floor} that {REQUIRED_GPU_TESTS} asks for")
        if self.problems and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        ran = len(self.ran - self.skipped.keys())
        verdict = "FAILED: " + "; ".join(self.problems) if self.problems else "ok"
        terminalreporter.write_line(
            f"{REQUIRE_GPU}: {len(self.collected)} gpu tests collected, {ran} ran, {len(self.skipped)} skipped, "
            f"at least {self.floor} required: {verdict}"
        )
        for nodeid, reason in sorted(self.skipped.items())[:10]:
            terminalreporter.write_line(f"  skipped {nodeid}: {reason}")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def conforms(request):
    """`conforms(report)`: a conformance report (minicnn.tools.conformance.check) passed. A test that takes it
    runs twice: "cpu", where the cpu-gpu step may skip, and "cuda", marked `gpu` so that `pytest -m
    gpu` runs the models users train on the GPU, where that step must have run and passed. The cuda
    case skips where no GPU is usable."""
    on_gpu = request.param == "cuda"
    if on_gpu and (reason := gpu_unavailable_reason()) is not None:
        pytest.skip(f"needs a usable GPU: {reason}")

    def check(report) -> None:
        assert report.passed, [(step.name, step.detail) for step in report.failures()]
        if on_gpu:
            step = next(step for step in report.steps if step.name == "cpu-gpu")
            assert step.status == "passed", f"the cpu-gpu step {step.status}: {step.detail}"

    return check


@pytest.fixture
def offline(isolated, monkeypatch):
    """The isolated environment with every download going to a port where nothing listens."""
    monkeypatch.setenv("MINICNN_MIRROR", UNREACHABLE_MIRROR)
    return isolated


@pytest.fixture
def shared_mnist() -> Path:
    """The read-only folder of the four original MNIST .gz files (never written to)."""
    if not all((SHARED_MNIST / f"{name}.gz").is_file() for name in MNIST_FILES):
        pytest.skip(f"the real MNIST files are not in {SHARED_MNIST.resolve()}")
    return SHARED_MNIST


@pytest.fixture
def mnist_copy(shared_mnist, tmp_path) -> Path:
    """A writable copy of the MNIST test split (t10k, 1.6 MB)."""
    folder = tmp_path / "mnist-copy"
    folder.mkdir()
    for name in MNIST_FILES[2:]:
        shutil.copy(shared_mnist / f"{name}.gz", folder)
    return folder

@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    """Each test that takes it runs in float32 and in float64."""
    return request.param


@pytest.fixture
def rng(request):
    """A generator seeded from the test's own id: fresh inputs per case, each case reproducible on its own."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user data folder, mirror or proxy; the download cache in a temporary folder."""
    for name in ("MINICNN_DATA", "MINICNN_MIRROR", "XDG_CACHE_HOME", "http_proxy", "HTTP_PROXY", "https_proxy",
                 "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def trained_lenet(tmp_path_factory):
    """A LeNet-5 trained for two quick epochs on 200 bundled digits, and one test digit saved as a
    PNG: (run folder, PNG path). Trained once for every test that draws pictures."""
    from minicnn import data
    from minicnn.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("trained-lenet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        config = TrainConfig(model="lenet5", dataset="digits", epochs=2, limit_train=200, seed=0, out=str(folder / "run"))
        result = train(config, notify=lambda message: None)
        digit = folder / "digit.png"
        Image.fromarray(data.load_dataset("digits", "test").images[0][0]).save(digit)
    return result.out_dir, digit


@pytest.fixture
def assert_picture():
    """`assert_picture(path, width=None, height=None)`: the file is a PNG of that size and not blank
    (contrast, and more than 16 colours); returns its pixels (H, W, 3)."""

    def check(path, width=None, height=None):
        with Image.open(path) as image:
            assert image.format == "PNG", path
            pixels = np.asarray(image.convert("RGB"))
        assert width is None or pixels.shape[1] == width, (path, pixels.shape)
        assert height is None or pixels.shape[0] == height, (path, pixels.shape)
        assert pixels.std() > 20, path
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16, path
        return pixels

    return check
