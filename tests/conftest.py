"""Fixtures shared across the test folders."""

import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
UNREACHABLE_MIRROR = "http://127.0.0.1:9/"  # the discard port: nothing listens there



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
