"""The AlexNet plugin: torchvision's layout and 61,100,840 parameters, the paper's LRN as an option, and
the small-input variant for 28x28 grey and 32x32 colour images."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.cli import app
from minicnn.tools.summary import SummaryError
from minicnn.tools.conformance import check_model

NAMES = [
    "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias", "features.6.weight",
    "features.6.bias", "features.8.weight", "features.8.bias", "features.10.weight", "features.10.bias",
    "classifier.1.weight", "classifier.1.bias", "classifier.4.weight", "classifier.4.bias",
    "classifier.6.weight", "classifier.6.bias",
]
CONVS = [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3)]  # (in, out, kernel)


def hand_count(first_kernel=11, pooled=6 * 6, hidden=4096, num_classes=1000):
    convs = sum(i * o * (first_kernel if n == 0 else k) ** 2 + o for n, (i, o, k) in enumerate(CONVS))
    return convs + (256 * pooled + 1) * hidden + (hidden + 1) * hidden + (hidden + 1) * num_classes


def structure_only(monkeypatch):
    """Skip the random draws: these tests look at names, shapes and counts, not values."""
    for name in ("uniform_", "normal_"):
        monkeypatch.setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)


@pytest.fixture(scope="module")
def alexnet():
    """(model, summary on 1x3x224x224): one build and one forward for the ImageNet tests."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        structure_only(monkeypatch)
        model = mc.create_model("alexnet")
    return model, mc.summarize(model, (3, 224, 224))


def test_registered_by_its_own_plugin():
    models = mc.plugin_system().registries["models"]
    assert models.get("alexnet").plugin == "alexnet" and models.get("alexnet").input_size == (3, 224, 224)
    assert models.get("alexnet_small").plugin == "alexnet" and models.get("alexnet_small").input_size == (3, 32, 32)
    assert mc.list_models("alexnet*") == ["alexnet", "alexnet_small"]


def test_61100840_parameters_as_torchvision(alexnet):
    model, summary = alexnet
    assert model.num_parameters() == summary.parameters == hand_count() == 61_100_840


def test_state_dict_names_shapes_and_order_are_torchvisions(alexnet):
    state = alexnet[0].state_dict()
    assert list(state) == NAMES
    for n, (i, o, k) in zip((0, 3, 6, 8, 10), CONVS):
        assert state[f"features.{n}.weight"].shape == (o, i, k, k) and state[f"features.{n}.bias"].shape == (o,)
    assert state["classifier.1.weight"].shape == (4096, 9216) and state["classifier.6.bias"].shape == (1000,)


def test_imagenet_stage_shapes_and_multiply_adds(alexnet):
    summary = alexnet[1]

    def by_type(kind):
        return [r.output_shape for r in summary.rows if r.type == kind]

    assert by_type("Conv2d") == [(64, 55, 55), (192, 27, 27), (384, 13, 13), (256, 13, 13), (256, 13, 13)]
    assert by_type("MaxPool2d") == [(64, 27, 27), (192, 13, 13), (256, 6, 6)]
    assert by_type("AdaptiveAvgPool2d") == [(256, 6, 6)]
    assert by_type("Linear") == [(4096,), (4096,), (1000,)]
    assert [r.type for r in summary.rows].count("Dropout") == 2 and [r.type for r in summary.rows].count("ReLU") == 7
    # outputs x inputs per output: 55*55*64 * 3*11*11 + 27*27*192 * 64*5*5 + 13*13 * (384*192 + 256*384 + 256*256)*3*3
    # + 9216*4096 + 4096*4096 + 4096*1000
    assert summary.multiply_adds == 714_188_480
    # three overlapping pools: each 3x3 window overlaps its neighbour by one row and column
    assert all(layer.kernel_size == 3 and layer.stride == 2 for layer in alexnet[0].features if isinstance(layer, nn.MaxPool2d))


def test_the_smallest_input_is_63x63(alexnet):
    assert mc.summarize(alexnet[0], (3, 63, 63)).output_shape == (1000,)
    with pytest.raises(SummaryError):
        mc.summarize(alexnet[0], (3, 62, 62))


def test_lrn_option_follows_the_paper_and_adds_no_parameters(monkeypatch):
    structure_only(monkeypatch)
    model = mc.create_model("alexnet", lrn=True)
    assert model.num_parameters() == 61_100_840
    types = [type(layer).__name__ for layer in model.features]
    assert types[:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d", "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert types.count("LocalResponseNorm") == 2
    # Krizhevsky et al. 2012, 3.3: b = a / (k + alpha * sum of a^2 over 5 neighbouring channels)^beta,
    # k=2, alpha=1e-4, beta=0.75 (no division by the window size)
    a = np.random.default_rng(0).standard_normal((1, 8, 3, 3)).astype(np.float32) * 30
    squares = np.pad(a**2, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(squares[:, j : j + 8] for j in range(5))
    expected = a / (2 + 1e-4 * window) ** 0.75
    np.testing.assert_allclose(model.features[2](mc.tensor(a)).numpy(), expected, rtol=1e-5)


def test_small_variant_parameter_count():
    assert mc.create_model("alexnet_small").num_parameters() == hand_count(3, 2 * 2, 1024, 10) == 4_557_642
    assert mc.create_model("alexnet_small", in_channels=1, lrn=True).num_parameters() == hand_count(3, 2 * 2, 1024, 10) - 2 * 64 * 9


def stage_shapes(model, x):
    """Output shapes (without the batch axis) of every convolution, pool and Linear, from one forward."""
    shapes = []
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Linear)
    handles = [m.register_forward_hook(lambda m, inputs, out: shapes.append(out.shape[1:]))
               for m in model.modules() if isinstance(m, kinds)]
    try:
        return model(x), shapes
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("channels, size, stages", [
    (1, 28, [(64, 28, 28), (64, 13, 13), (192, 13, 13), (192, 6, 6), (384, 6, 6), (256, 6, 6), (256, 6, 6), (256, 2, 2)]),
    (3, 32, [(64, 32, 32), (64, 15, 15), (192, 15, 15), (192, 7, 7), (384, 7, 7), (256, 7, 7), (256, 7, 7), (256, 3, 3)]),
])
@pytest.mark.parametrize("lrn", [False, True])
def test_small_variant_forward_and_backward(channels, size, stages, lrn):
    mc.manual_seed(0)
    model = mc.create_model("alexnet_small", in_channels=channels, lrn=lrn)
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, channels, size, size)).astype(np.float32))
    y, shapes = stage_shapes(model, x)
    assert shapes == stages + [(256, 2, 2), (1024,), (1024,), (10,)]
    loss = F.cross_entropy(y, np.array([1, 8]))
    loss.backward()
    assert np.isfinite(loss.item())
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape and np.abs(p.grad.numpy()).sum() > 0, name


def test_small_variant_passes_the_conformance_check(conforms):
    """Forward and backward on a 2x3x32x32 batch, gradcheck, state_dict round trip (cpu-gpu where a GPU is).
    The gradient check is the directional one only: element-wise checks cost two forwards per element."""
    conforms(check_model("alexnet_small", max_elements=0))


def test_minicnn_summary_of_the_small_variant():
    result = CliRunner().invoke(app, ["summary", "alexnet_small", "--input-size", "1,28,28", "--in-channels", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["output_shape"] == [10] and summary["parameters"] == 4_557_642 - 2 * 64 * 9


def test_same_function_as_a_torch_twin_of_the_small_variant():
    """Without torchvision: a torch.nn twin of alexnet_small with LRN (adaptive 3x3 -> 2x2 pool, dropout off)."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    def lrn():
        return tnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)

    twin = tnn.Module()
    twin.features = tnn.Sequential(
        tnn.Conv2d(3, 64, 3, padding=1), tnn.ReLU(), lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(), lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(), tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2))
    twin.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(1024, 1024), tnn.ReLU(), tnn.Dropout(),
                                     tnn.Linear(1024, 1024), tnn.ReLU(), tnn.Linear(1024, 10))
    twin.eval()
    model = mc.create_model("alexnet_small", lrn=True).eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32) * 10
    with torch.no_grad():
        pooled = tnn.functional.adaptive_avg_pool2d(twin.features(torch.from_numpy(x)), (2, 2))
        expected = twin.classifier(torch.flatten(pooled, 1)).numpy()
    with mc.no_grad():
        actual = model(mc.tensor(x)).numpy()
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


def test_torchvision_weights_compute_the_same_function(monkeypatch, same_as_torch):
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.alexnet(weights=None)
    assert list(reference.state_dict()) == NAMES
    structure_only(monkeypatch)
    same_as_torch(mc.create_model("alexnet"), reference, seed=2)
