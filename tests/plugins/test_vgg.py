"""The VGG plugin: torchvision's layouts and parameter counts, the small-input variants, and the tutorial's
point that two stacked 3x3 convolutions see what one 5x5 sees with 18 weights instead of 25."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.cli import app
from minicnn.tools.conformance import check_model

CONFIGS = {  # convolutions per stage (the paper's configurations A, B, D, E)
    "vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4),
}
WIDTHS = (64, 128, 256, 512, 512)
# torchvision's counts for 3 channels and 1000 classes.
PARAMETERS = {
    "vgg11": 132_863_336, "vgg11_bn": 132_868_840, "vgg13": 133_047_848, "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544, "vgg16_bn": 138_365_992, "vgg19": 143_667_240, "vgg19_bn": 143_678_248,
}
IMAGENET = list(PARAMETERS)
SMALL = [f"{name}_small" for name in IMAGENET]


def config_of(name):
    return name.split("_")[0]


def expected_parameters(name, in_channels=3, num_classes=1000, pooled=7 * 7, hidden=4096):
    """Count by hand: 3x3 convolutions (+ weight and bias per channel with batch norm), then the classifier."""
    total, channels = 0, in_channels
    for convs, width in zip(CONFIGS[config_of(name)], WIDTHS):
        for _ in range(convs):
            total += channels * width * 9 + width + (2 * width if "_bn" in name else 0)
            channels = width
    return total + (512 * pooled + 1) * hidden + (hidden + 1) * hidden + (hidden + 1) * num_classes


def structure_only(monkeypatch):
    """Skip the random draws (seconds for the 103M weights of the first Linear): these tests look at
    names, shapes and counts; test_torchvisions_initialisation looks at the values."""
    for name in ("uniform_", "normal_"):
        monkeypatch.setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)


@pytest.fixture(scope="module", params=IMAGENET)
def imagenet(request):
    """(name, model, summary on 1x3x224x224): one build and one forward per ImageNet model."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        structure_only(monkeypatch)
        model = mc.create_model(request.param)
    yield request.param, model, mc.summarize(model, (3, 224, 224))


def test_every_variant_is_registered_by_the_vgg_plugin():
    models = mc.plugin_system().registries["models"]
    for name in IMAGENET:
        assert models.get(name).plugin == "vgg" and models.get(name).input_size == (3, 224, 224)
        assert models.get(f"{name}_small").plugin == "vgg" and models.get(f"{name}_small").input_size == (3, 32, 32)
    assert sorted(mc.list_models("vgg*")) == sorted(IMAGENET + SMALL)


def test_the_hand_count_gives_torchvisions_numbers():
    assert {name: expected_parameters(name) for name in IMAGENET} == PARAMETERS


def test_imagenet_parameter_counts_are_torchvisions(imagenet):
    name, model, summary = imagenet
    assert model.num_parameters() == summary.parameters == PARAMETERS[name]


def test_imagenet_state_dict_names_and_shapes_are_torchvisions(imagenet):
    """state_dict() lists a module's own tensors, then its children's in order; the 25088x4096 classifier
    is not copied here, only its names and shapes read."""
    name, model, _ = imagenet
    assert [child for child, _ in model.named_children()] == ["features", "avgpool", "classifier"]
    assert not list(model.parameters(recurse=False)) and not list(model.buffers(recurse=False))
    features = model.features.state_dict()
    state = {f"features.{k}": v for k, v in features.items()}
    state.update((f"classifier.{k}", p) for k, p in model.classifier.named_parameters())
    names = list(state)
    assert names[:2] == ["features.0.weight", "features.0.bias"]
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert names[-6:] == ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
                          "classifier.6.weight", "classifier.6.bias"]
    assert state["classifier.0.weight"].shape == (4096, 25088) and state["classifier.6.bias"].shape == (1000,)
    per_conv = 3 if "_bn" in name else 2  # Conv [BatchNorm2d] ReLU
    second_conv = per_conv + (CONFIGS[config_of(name)][0] == 1)  # after a pool in vgg11
    if "_bn" in name:
        assert names[2:9] == ["features.1.weight", "features.1.bias", "features.1.running_mean", "features.1.running_var",
                              "features.1.num_batches_tracked", f"features.{second_conv}.weight", f"features.{second_conv}.bias"]
        assert state["features.1.num_batches_tracked"].dtype == np.int64
    else:
        assert names[2:4] == [f"features.{second_conv}.weight", f"features.{second_conv}.bias"]
        assert not any("running" in n for n in names)
    assert len(model.features) == per_conv * sum(CONFIGS[config_of(name)]) + 5
    last_conv = len(model.features) - 1 - per_conv  # then [BatchNorm2d] ReLU MaxPool2d
    assert state[f"features.{last_conv}.weight"].shape == (512, 512, 3, 3)


def test_imagenet_stage_shapes(imagenet):
    name, _, summary = imagenet
    pools = [r.output_shape for r in summary.rows if r.type == "MaxPool2d"]
    assert pools == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
    assert [r.output_shape for r in summary.rows if r.type == "AdaptiveAvgPool2d"] == [(512, 7, 7)]
    assert [r.output_shape for r in summary.rows if r.type == "Linear"] == [(4096,), (4096,), (1000,)]
    convs_per_stage, count = [], 0
    for row in summary.rows:
        if row.type == "Conv2d":
            count += 1
        elif row.type == "MaxPool2d":
            convs_per_stage, count = convs_per_stage + [count], 0
    assert tuple(convs_per_stage) == CONFIGS[config_of(name)]
    assert sum(r.type == "BatchNorm2d" for r in summary.rows) == (sum(convs_per_stage) if "_bn" in name else 0)


def test_torchvisions_initialisation():
    mc.manual_seed(0)
    model = mc.create_model("vgg11_bn_small")
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * 9
            assert np.std(module.weight.numpy()) == pytest.approx(np.sqrt(2 / fan_out), rel=0.1)
            assert not module.bias.numpy().any()
        elif isinstance(module, nn.BatchNorm2d):
            assert (module.weight.numpy() == 1).all() and not module.bias.numpy().any()
        elif isinstance(module, nn.Linear):
            assert np.std(module.weight.numpy()) == pytest.approx(0.01, rel=0.1)
            assert not module.bias.numpy().any()


def test_unknown_configuration_names_the_known_ones():
    from minicnn_vgg import VGG

    with pytest.raises(ValueError, match="vgg11, vgg13, vgg16, vgg19"):
        VGG("vgg12")


@pytest.mark.parametrize("name", SMALL)
def test_small_variant_parameter_count(name, monkeypatch):
    structure_only(monkeypatch)
    model = mc.create_model(name)
    assert model.num_parameters() == expected_parameters(name.removesuffix("_small"), num_classes=10, pooled=1, hidden=512)
    imagenet_features = expected_parameters(name.removesuffix("_small"), num_classes=0, hidden=0)
    assert sum(p.numel() for p in model.features.parameters()) == imagenet_features


def stage_shapes(model, x):
    """Output shapes (without the batch axis) of every pool and Linear, in order, from one forward."""
    shapes = []
    handles = [m.register_forward_hook(lambda m, inputs, out: shapes.append(out.shape[1:]))
               for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Linear))]
    try:
        return model(x), shapes
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("name", SMALL)
def test_small_variant_trains_on_28x28_grey(name):
    mc.manual_seed(0)
    model = mc.create_model(name, in_channels=1)
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32))
    y, shapes = stage_shapes(model, x)
    # ceil-mode pools: 28 -> 14 -> 7 -> 4 -> 2 -> 1, where rounding down would reach 0
    assert shapes == [(64, 14, 14), (128, 7, 7), (256, 4, 4), (512, 2, 2), (512, 1, 1), (512, 1, 1), (512,), (512,), (10,)]
    loss = F.cross_entropy(y, np.array([3, 7]))
    loss.backward()
    assert np.isfinite(loss.item())
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape and np.isfinite(p.grad.numpy()).all(), pname
    assert np.abs(model.features[0].weight.grad.numpy()).sum() > 0


def test_small_variant_on_32x32_colour_stage_shapes():
    model = mc.create_model("vgg16_bn_small")
    summary = mc.summarize(model, (3, 32, 32))
    assert [r.output_shape for r in summary.rows if r.type in ("MaxPool2d", "AdaptiveAvgPool2d", "Linear")] == [
        (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2), (512, 1, 1), (512, 1, 1), (512,), (512,), (10,)]


@pytest.mark.parametrize("name", SMALL)
def test_small_variant_passes_the_conformance_check(name, conforms):
    """Forward and backward on a 2x3x32x32 batch, gradcheck, state_dict round trip (cpu-gpu where a GPU is).
    The gradient check is the directional one only: element-wise checks cost two forwards per element."""
    conforms(check_model(name, max_elements=0))


def test_imagenet_feature_weights_load_into_the_small_variant():
    """Same feature names and shapes: ImageNet features can start a CIFAR model (strict=False skips the classifier)."""
    small = mc.create_model("vgg11_small")
    with pytest.MonkeyPatch.context() as monkeypatch:
        structure_only(monkeypatch)
        features = mc.create_model("vgg11").features.state_dict()
    missing, unexpected = small.load_state_dict({f"features.{k}": v for k, v in features.items()}, strict=False)
    assert unexpected == [] and all(name.startswith("classifier.") for name in missing)


def test_two_stacked_3x3_convolutions_see_a_5x5_window_with_18_weights_instead_of_25():
    channels = 8
    stacked = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU(),
                            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU())
    single = nn.Sequential(nn.Conv2d(channels, channels, 5, padding=2, bias=False), nn.ReLU())
    two, one = mc.summarize(stacked, (channels, 16, 16)), mc.summarize(single, (channels, 16, 16))
    assert two.parameters == 2 * 9 * channels * channels and one.parameters == 25 * channels * channels
    assert two.rows[-1].receptive_field == one.rows[-1].receptive_field == (5, 5)
    assert two.output_shape == one.output_shape == (channels, 16, 16)
    assert sum(r.type == "ReLU" for r in two.rows) == 2  # and one more nonlinearity


def test_minicnn_summary_shows_two_3x3_convolutions_seeing_5x5():
    result = CliRunner().invoke(app, ["summary", "vgg13_small", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    convs = [row for row in summary["rows"] if row["type"] == "Conv2d"]
    assert len(convs) == 10 and summary["parameters"] == expected_parameters("vgg13", num_classes=10, pooled=1, hidden=512)
    assert [row["receptive_field"] for row in convs[:2]] == [[3, 3], [5, 5]]
    assert convs[1]["parameters"] == 64 * 64 * 9 + 64


def test_same_function_as_a_torch_twin_of_the_small_variant():
    """Without torchvision: a torch.nn twin of vgg11_bn_small (ceil-mode pools, 1x1 pool, batch norm in eval mode)."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    layers, channels = [], 3
    for convs, width in zip(CONFIGS["vgg11"], WIDTHS):
        for _ in range(convs):
            layers += [tnn.Conv2d(channels, width, 3, padding=1), tnn.BatchNorm2d(width), tnn.ReLU()]
            channels = width
        layers.append(tnn.MaxPool2d(2, 2, ceil_mode=True))
    twin = tnn.Module()
    twin.features = tnn.Sequential(*layers)
    twin.classifier = tnn.Sequential(tnn.Linear(512, 512), tnn.ReLU(), tnn.Dropout(), tnn.Linear(512, 512), tnn.ReLU(),
                                     tnn.Dropout(), tnn.Linear(512, 10))
    randomise_batch_norm(twin, torch)
    twin.eval()
    model = mc.create_model("vgg11_bn_small").eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = twin.classifier(torch.flatten(tnn.functional.adaptive_avg_pool2d(twin.features(torch.from_numpy(x)), 1), 1)).numpy()
    with mc.no_grad():
        actual = model(mc.tensor(x)).numpy()
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


def randomise_batch_norm(module, torch):
    """Running statistics and affine values away from 1 and 0, so evaluation-mode batch norm is tested."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.num_batches_tracked.fill_(7)


@pytest.mark.parametrize("name", IMAGENET)
def test_torchvision_weights_compute_the_same_function(name, monkeypatch, same_as_torch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    reference = getattr(torchvision.models, name)(weights=None)
    randomise_batch_norm(reference, torch)
    structure_only(monkeypatch)
    same_as_torch(mc.create_model(name), reference, seed=2)
