"""The LeNet-5 plugin: the tutorial's layout (docs/en/tutorial.md §8), its parameter count, and a working forward/backward."""

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F


def stage_shapes(model, x):
    shapes = []
    for layer in model.features:
        x = layer(x)
        if type(layer).__name__ in ("Conv2d", "MaxPool2d"):
            shapes.append(x.shape[1:])
    x = model.classifier[0](x)
    for layer in list(model.classifier)[1:]:
        x = layer(x)
        if type(layer).__name__ == "Linear":
            shapes.append(x.shape[1:])
    return shapes


def test_registered_by_its_own_plugin():
    entry = mc.plugin_system().registries["models"].get("lenet5")
    assert entry.plugin == "lenet" and entry.input_size == (1, 28, 28)


def test_the_seeds_shapes_and_61706_parameters():
    model = mc.create_model("lenet5")
    assert model.num_parameters() == 61_706
    x = mc.tensor(np.zeros((2, 1, 28, 28), dtype=np.float32))
    # C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5, F 120-84-10
    assert stage_shapes(model, x) == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120,), (84,), (10,)]


def test_parameter_names_follow_the_dotted_convention():
    names = list(mc.create_model("lenet5").state_dict())
    assert names == [
        "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
        "classifier.1.weight", "classifier.1.bias", "classifier.3.weight", "classifier.3.bias",
        "classifier.5.weight", "classifier.5.bias",
    ]


def test_colour_32x32_variant():
    model = mc.create_model("lenet5", num_classes=100, in_channels=3, padding=0)
    y = model(mc.tensor(np.zeros((1, 3, 32, 32), dtype=np.float32)))
    assert y.shape == (1, 100)


def test_forward_and_backward_reach_every_parameter():
    mc.manual_seed(0)
    model = mc.create_model("lenet5")
    x = mc.tensor(np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    loss = F.cross_entropy(model(x), np.array([0, 1, 2, 3]))
    loss.backward()
    assert np.isfinite(loss.item())
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape and np.abs(p.grad.numpy()).sum() > 0, name


def test_same_function_as_a_torch_twin():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    twin = tnn.Sequential()
    twin.features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2))
    twin.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    model = mc.create_model("lenet5")
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    expected = twin.classifier(twin.features(torch.from_numpy(x))).detach().numpy()
    np.testing.assert_allclose(model(mc.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
