"""Sequential and ModuleList: order, names, indexing, and gradients through a chain of layers."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.testing import gradcheck


def test_sequential_applies_children_in_order():
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    model = nn.Sequential(first, nn.ReLU(), second)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    w1, b1, w2, b2 = (p.numpy() for p in (first.weight, first.bias, second.weight, second.bias))
    expected = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
    np.testing.assert_allclose(model(mc.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_sequential_names_children_by_position():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    assert [name for name, _ in model.named_children()] == ["0", "1", "2"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_sequential_from_ordered_dict_uses_its_keys():
    model = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("act", nn.ReLU()), ("fc", nn.Linear(2, 2))]))
    assert [name for name, _ in model.named_children()] == ["conv", "act", "fc"]
    assert list(model.state_dict()) == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    assert model.conv is model[0]


def test_sequential_from_ordered_dict_names_match_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.Sequential(OrderedDict([
            ("features", lib.Sequential(lib.Conv2d(1, 2, 3), lib.BatchNorm2d(2))), ("classifier", lib.Linear(8, 3)),
        ]))

    assert list(build(nn).state_dict()) == list(build(torch.nn).state_dict())


def test_sequential_indexing_length_and_iteration():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3
    assert model[0] is layers[0] and model[-1] is layers[2]
    assert list(model) == layers
    with pytest.raises(IndexError):
        model[3]


def test_sequential_slice_is_a_sequential_of_the_same_modules():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    part = nn.Sequential(*layers)[1:]
    assert isinstance(part, nn.Sequential)
    assert list(part) == layers[1:]
    x = mc.tensor(np.array([[1.0, -2.0, 3.0]], dtype=np.float32))
    np.testing.assert_array_equal(part(x).numpy(), layers[2](layers[1](x)).numpy())


def test_sequential_slice_keeps_the_children_names():
    """PyTorch's `model[2:]` keeps the names "2", "3"...: a truncated feature extractor's state_dict
    keys stay those of the full model (torchvision weights load into it)."""
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert [name for name, _ in model[1:].named_children()] == ["1", "2"]
    assert list(model[1:].state_dict()) == ["2.weight", "2.bias"]


def test_sequential_append_names_the_next_position_and_returns_self():
    model = nn.Sequential(nn.Linear(2, 3))
    layer = nn.Linear(3, 1)
    assert model.append(layer) is model
    assert len(model) == 2 and model[1] is layer
    assert list(model.state_dict())[-2:] == ["1.weight", "1.bias"]


def test_empty_sequential_is_the_identity():
    x = mc.tensor([1.0, 2.0])
    assert nn.Sequential()(x) is x


def test_module_list_registers_its_modules():
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])

        def forward(self, x):
            for layer in self.layers:
                x = F.relu(layer(x))
            return x

    stack = Stack()
    assert [name for name, _ in stack.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
    ]
    assert len(stack.layers) == 2 and stack.layers[-1] is list(stack.layers)[1]
    layer = nn.Linear(2, 2)
    assert stack.layers.append(layer) is stack.layers
    assert stack.layers[2] is layer
    assert "layers.2.weight" in stack.state_dict()
    assert stack(mc.tensor(np.ones((1, 2), dtype=np.float32))).shape == (1, 2)


def test_module_list_names_match_torch():
    torch = pytest.importorskip("torch")
    mine = nn.ModuleList([nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)])
    reference = torch.nn.ModuleList([torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)])
    assert list(mine.state_dict()) == list(reference.state_dict())


def test_module_list_has_no_forward():
    with pytest.raises(NotImplementedError, match="ModuleList"):
        nn.ModuleList([nn.ReLU()])(mc.tensor([1.0]))


# --- gradients through a chain --------------------------------------------------------------------


def small_net():
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 2, stride=1, padding="same"), nn.Tanh(), nn.AvgPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5), nn.Sigmoid(), nn.Linear(5, 3), nn.LogSoftmax(dim=1),
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradcheck_through_a_sequential_of_layers(mode):
    mc.manual_seed(0)
    model = small_net().double()
    getattr(model, mode)()
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6))
    assert gradcheck(model, [x])


def test_sequential_parameter_gradients_match_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.Sequential(
            lib.Conv2d(2, 3, 3, padding=1), lib.BatchNorm2d(3), lib.ReLU(), lib.MaxPool2d(2),
            lib.Flatten(), lib.Linear(3 * 3 * 3, 4),
        )

    model, reference = build(nn).double(), build(torch.nn).double()
    model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    rng = np.random.default_rng(2)
    x, upstream = rng.standard_normal((4, 2, 6, 6)), rng.standard_normal((4, 4))
    model(mc.tensor(x)).backward(upstream)
    reference(torch.from_numpy(x)).backward(torch.from_numpy(upstream))
    for (name, mine), theirs in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
