"""The ResNet plugin: parameter counts, torchvision's state_dict layout, per-stage shapes, the
parameter-free CIFAR shortcut, F(x) + x, forward and backward, conformance, and (where torch and
torchvision are installed) the same function as torchvision's models."""

from functools import lru_cache

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.plugin.manager import model_entry
from minicnn.tools.conformance import check_model

IMAGENET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
CIFAR = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")

PARAMETERS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586,
    "resnet56": 853_018, "resnet110": 1_727_962,
}


@lru_cache(maxsize=None)
def default_model(name):
    """Each default model built once for the whole file (resnet152 holds 240 MB of float32)."""
    mc.manual_seed(0)
    return mc.create_model(name)


@pytest.fixture(autouse=True, scope="module")
def _free_the_models_afterwards():
    yield
    default_model.cache_clear()


def zeros(*shape):
    return mc.tensor(np.zeros(shape, dtype=np.float32))


def random(*shape, seed=0):
    return mc.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def stage_shapes(model, x):
    """Output shapes (without the batch axis) of the stem, each stage and the classifier."""
    stem = model.maxpool if hasattr(model, "maxpool") else model.relu
    stages = [stem] + [getattr(model, f"layer{i}") for i in range(1, 5) if hasattr(model, f"layer{i}")]
    shapes = []
    handles = [m.register_forward_hook(lambda module, inputs, out: shapes.append(out.shape[1:])) for m in stages]
    try:
        with mc.no_grad():
            output = model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train()
    return shapes + [output.shape[1:]]


# -- registration and parameter counts --------------------------------------------------------------

def test_every_variant_is_registered_by_the_resnet_plugin():
    assert set(mc.list_models("resnet*")) >= set(IMAGENET + CIFAR)
    for name in IMAGENET + CIFAR:
        entry = model_entry(name)
        assert entry.plugin == "resnet" and "F(x) + x" in entry.description
        assert entry.input_size == ((3, 224, 224) if name in IMAGENET else (3, 32, 32))


@pytest.mark.parametrize("name", IMAGENET + CIFAR)
def test_parameter_count(name):
    assert default_model(name).num_parameters() == PARAMETERS[name]


def test_multiply_adds_at_the_default_input_sizes():
    assert mc.summarize(default_model("resnet18"), (3, 224, 224)).multiply_adds == 1_814_073_344
    assert mc.summarize(default_model("resnet20"), (3, 32, 32)).multiply_adds == 40_551_040


def test_num_classes_and_in_channels_change_only_the_first_and_last_layers():
    model = mc.create_model("resnet18", num_classes=10, in_channels=1)
    assert model.conv1.weight.shape == (64, 1, 7, 7) and model.fc.weight.shape == (10, 512)
    assert model.num_parameters() == PARAMETERS["resnet18"] - 64 * 2 * 49 - 990 * 513
    model = mc.create_model("resnet56", num_classes=100, in_channels=1)
    assert model.conv1.weight.shape == (16, 1, 3, 3) and model.fc.weight.shape == (100, 64)


def test_cifar_depth_must_be_6n_plus_2():
    from minicnn_resnet import CifarResNet

    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(21)


# -- torchvision's layout ---------------------------------------------------------------------------

def test_resnet18_state_dict_names_follow_torchvision():
    state = default_model("resnet18").state_dict()
    assert len(state) == 122
    assert list(state)[:8] == [
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
        "layer1.0.conv1.weight", "layer1.0.bn1.weight",
    ]
    assert list(state)[-2:] == ["fc.weight", "fc.bias"]
    downsample = [name for name in state if "downsample" in name]
    assert downsample[:6] == [
        "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
        "layer2.0.downsample.1.running_mean", "layer2.0.downsample.1.running_var",
        "layer2.0.downsample.1.num_batches_tracked",
    ]
    assert {name.split(".")[0] for name in downsample} == {"layer2", "layer3", "layer4"}
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.bn2.running_var"].shape == (512,)
    assert state["layer1.0.bn1.num_batches_tracked"].dtype == np.int64
    assert state["layer1.0.bn1.num_batches_tracked"].shape == ()
    assert state["fc.weight"].shape == (1000, 512)


def test_resnet50_bottlenecks_are_torchvisions_v1_5():
    model = default_model("resnet50")
    state = model.state_dict()
    assert len(state) == 320
    first = model.layer2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)  # stride on the 3x3 conv
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)  # width changes in layer1
    assert state["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert state["layer4.2.bn3.running_mean"].shape == (2048,)
    assert "layer1.1.downsample.0.weight" not in state
    assert state["fc.weight"].shape == (1000, 2048)


def test_initialisation_follows_torchvision():
    model = default_model("resnet18")
    weight = model.layer3[1].conv2.weight.numpy()
    assert abs(weight.std() - np.sqrt(2 / (256 * 9))) < 0.02 * np.sqrt(2 / (256 * 9))  # N(0, 2 / fan_out)
    assert np.all(model.layer3[1].bn2.weight.numpy() == 1) and np.all(model.layer3[1].bn2.bias.numpy() == 0)
    zeroed = mc.create_model("resnet20", zero_init_residual=True)
    assert np.all(zeroed.layer2[0].bn2.weight.numpy() == 0) and np.all(zeroed.layer2[0].bn1.weight.numpy() == 1)


# -- per-stage shapes -------------------------------------------------------------------------------

def test_resnet18_stage_shapes_at_224():
    shapes = stage_shapes(default_model("resnet18"), zeros(1, 3, 224, 224))
    assert shapes == [(64, 56, 56), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7), (1000,)]


def test_resnet50_stage_shapes_at_224():
    shapes = stage_shapes(default_model("resnet50"), zeros(1, 3, 224, 224))
    assert shapes == [(64, 56, 56), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7), (1000,)]


@pytest.mark.parametrize("name, size, channels", [(name, 32, 3) for name in IMAGENET] + [
    ("resnet18", 28, 1), ("resnet50", 28, 1)])
def test_imagenet_stem_keeps_small_inputs_at_least_1x1(name, size, channels):
    """28 -> conv1 14 -> maxpool 7 -> 7, 4, 2, 1; 32 -> 16 -> 8 -> 8, 4, 2, 1: wasteful, but it works."""
    e = 1 if name in ("resnet18", "resnet34") else 4
    model = default_model(name) if channels == 3 else mc.create_model(name, num_classes=1000, in_channels=channels)
    stem = size // 4
    expected = [(64, stem, stem), (64 * e, stem, stem), (128 * e, 4, 4), (256 * e, 2, 2), (512 * e, 1, 1), (1000,)]
    assert stage_shapes(model, zeros(1, channels, size, size)) == expected


def test_small_input_stem_keeps_the_resolution():
    model = mc.create_model("resnet18", num_classes=10, small_input=True)
    assert model.conv1.weight.shape == (64, 3, 3, 3) and type(model.maxpool).__name__ == "Identity"
    assert list(model.state_dict()) == list(default_model("resnet18").state_dict())
    shapes = stage_shapes(model, zeros(1, 3, 32, 32))
    assert shapes == [(64, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (10,)]


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_stage_shapes_at_32x32(name):
    assert stage_shapes(default_model(name), zeros(1, 3, 32, 32)) == [
        (16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8), (10,)]


@pytest.mark.parametrize("name", ["resnet20", "resnet110"])
def test_cifar_stage_shapes_at_28x28_grey(name):
    grey = mc.create_model(name, in_channels=1)
    assert stage_shapes(grey, zeros(1, 1, 28, 28)) == [(16, 28, 28), (16, 28, 28), (32, 14, 14), (64, 7, 7), (10,)]


# -- the CIFAR shortcut, "option A" -----------------------------------------------------------------

def test_option_a_shortcut_subsamples_and_pads_zero_channels_without_parameters():
    model = default_model("resnet20")
    shortcut = model.layer2[0].downsample
    assert type(shortcut).__name__ == "ZeroPadShortcut" and shortcut.num_parameters() == 0
    assert not any("downsample" in name for name in model.state_dict())
    assert model.layer1[0].downsample is None and model.layer2[1].downsample is None

    x = np.random.default_rng(0).standard_normal((2, 16, 7, 7)).astype(np.float32)
    expected = np.zeros((2, 32, 4, 4), dtype=np.float32)
    for i in range(4):
        for j in range(4):
            expected[:, :16, i, j] = x[:, :, 2 * i, 2 * j]
    xt = mc.tensor(x, requires_grad=True)
    y = shortcut(xt)
    np.testing.assert_array_equal(y.numpy(), expected)

    weights = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    (y * mc.tensor(weights)).sum().backward()
    grad = np.zeros_like(x)
    grad[:, :, ::2, ::2] = weights[:, :16]
    np.testing.assert_array_equal(xt.grad.numpy(), grad)


# -- F(x) + x ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, stage", [("resnet20", "layer1"), ("resnet20", "layer3"), ("resnet50", "layer1")])
def test_a_block_whose_residual_is_zero_passes_x_through(name, stage):
    """The point of residual blocks (He et al., 2015): if a block learns nothing (F(x) = 0) its output is x, so depth cannot hurt."""
    model = mc.create_model(name, num_classes=10, zero_init_residual=True)
    block = getattr(model, stage)[1]
    channels = block.conv1.in_channels
    x = random(2, channels, 6, 6)
    np.testing.assert_array_equal(block.residual(x).numpy(), 0)
    np.testing.assert_array_equal(block(x).numpy(), np.maximum(x.numpy(), 0))  # relu(0 + x)
    inside = F.relu(x)  # inside the network x has been through a ReLU: the block is the identity
    xt = mc.tensor(inside.numpy(), requires_grad=True)
    out = block(xt)
    np.testing.assert_array_equal(out.numpy(), inside.numpy())
    weights = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    (out * mc.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), weights * (inside.numpy() > 0))  # the gradient flows as is


def test_a_block_adds_its_residual_to_x():
    block = default_model("resnet20").layer1[1]
    x = F.relu(random(2, 16, 5, 5))
    np.testing.assert_allclose(block(x).numpy(), np.maximum(block.residual(x).numpy() + x.numpy(), 0), rtol=1e-6)


# -- forward, backward, training, conformance -------------------------------------------------------

@pytest.mark.parametrize("name, channels, size", [
    ("resnet20", 1, 28), ("resnet20", 3, 32), ("resnet18", 1, 28), ("resnet50", 3, 32),
])
def test_forward_and_backward_reach_every_parameter(name, channels, size):
    mc.manual_seed(0)
    model = mc.create_model(name, num_classes=10, in_channels=channels)
    x = random(2, channels, size, size, seed=1)
    loss = F.cross_entropy(model(x), np.array([3, 7]))
    loss.backward()
    assert np.isfinite(loss.item())
    for pname, p in model.named_parameters():
        grad = p.grad.numpy() if p.grad is not None else None
        assert grad is not None and grad.shape == p.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0, pname


def test_a_few_sgd_steps_fit_a_small_batch_of_28x28_grey_images():
    mc.manual_seed(0)
    model = mc.create_model("resnet20", num_classes=4, in_channels=1)
    optimizer = mc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = random(8, 1, 28, 28, seed=3)
    labels = np.arange(8) % 4
    losses = []
    for _ in range(8):
        model.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_resnet20_passes_the_plugin_conformance_check(conforms):
    """What `minicnn check resnet20` runs; the slowest test here, as its float64 gradcheck makes ~470
    forward passes (two per element of each tensor of at most 16 elements: layer1's batch norms)."""
    conforms(check_model("resnet20"))


# -- the same function as PyTorch -------------------------------------------------------------------

def _perturb_batch_norms(torch, model):
    """torchvision starts every batch norm at weight 1, bias 0, mean 0, variance 1; move them, so the
    comparison also covers the running statistics and the affine step."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.2 * torch.rand(n, generator=generator) - 0.1)
                module.running_mean.copy_(0.2 * torch.rand(n, generator=generator) - 0.1)
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_same_function_as_torchvision(name, same_as_torch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    twin = getattr(torchvision.models, name)(weights=None)
    _perturb_batch_norms(torch, twin)
    same_as_torch(mc.create_model(name), twin, seed=0)


def _torch_cifar_resnet(torch, depth, in_channels):
    """He et al.'s CIFAR ResNet written directly in torch.nn, with our names (there is no torchvision one)."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            shortcut = torch.nn.functional.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra))
            return torch.relu(out + shortcut)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = tnn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            widths = [16, 16, 32, 64]
            for i in range(1, 4):
                blocks = [Block(widths[i - 1], widths[i], 1 if i == 1 else 2)]
                blocks += [Block(widths[i], widths[i], 1) for _ in range(n - 1)]
                setattr(self, f"layer{i}", tnn.Sequential(*blocks))
            self.fc = tnn.Linear(64, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(x.mean(dim=(2, 3)))

    return Net()


def test_resnet20_same_function_and_gradients_as_a_torch_twin():
    torch = pytest.importorskip("torch")
    mc.manual_seed(0)
    model = mc.create_model("resnet20", in_channels=1)
    twin = _torch_cifar_resnet(torch, 20, 1)
    twin.load_state_dict({key: torch.from_numpy(value) for key, value in model.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((3, 1, 28, 28)).astype(np.float32)
    labels = np.array([1, 5, 9])

    ours_x = mc.tensor(x, requires_grad=True)
    ours = model(ours_x)
    F.cross_entropy(ours, labels).backward()
    twin_x = torch.from_numpy(x).requires_grad_(True)
    expected = twin(twin_x)
    torch.nn.functional.cross_entropy(expected, torch.from_numpy(labels)).backward()

    np.testing.assert_allclose(ours.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours_x.grad.numpy(), twin_x.grad.numpy(), rtol=1e-3, atol=1e-6)
    twin_grads = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        expected_grad = twin_grads[name].grad.numpy()
        scale = np.abs(expected_grad).max()
        np.testing.assert_allclose(p.grad.numpy(), expected_grad, rtol=1e-3, atol=1e-5 * scale, err_msg=name)
    running = dict(twin.named_buffers())
    for name, value in model.state_dict().items():
        if "running" in name:
            np.testing.assert_allclose(value, running[name].numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
