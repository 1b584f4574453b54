"""nn.fuse_conv_relu: Conv2d -> ReLU pairs become one convolution with a fused ReLU, and nothing
observable changes but the module tree."""

import numpy as np

import minicnn as mc
from minicnn import nn


class Block(nn.Module):
    """A custom forward that calls its ReLU itself, like a ResNet block: must be left alone."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


def make_model():
    mc.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.ReLU()),
        nn.Conv2d(4, 4, 1), nn.Sigmoid(),
        Block(),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 3), nn.ReLU(),
    )


def forward_and_grads(model, x):
    model.zero_grad()
    y = model(mc.tensor(x))
    (y * y).sum().backward()
    return y.numpy(), {name: p.grad.numpy().copy() for name, p in model.named_parameters()}


def test_fusing_changes_no_output_gradient_or_state_dict_key():
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    plain, fused = make_model(), make_model()
    assert nn.fuse_conv_relu(fused) == 2
    y_plain, g_plain = forward_and_grads(plain, x)
    y_fused, g_fused = forward_and_grads(fused, x)
    np.testing.assert_array_equal(y_fused, y_plain)
    for name in g_plain:
        np.testing.assert_allclose(g_fused[name], g_plain[name], rtol=1e-6, atol=1e-7)
    assert list(fused.state_dict()) == list(plain.state_dict())


def test_only_a_relu_right_after_a_conv_in_a_sequential_is_fused():
    model = make_model()
    nn.fuse_conv_relu(model)
    assert model[0].activation == "relu" and isinstance(model[1], nn.Identity)
    inner = model[3]
    assert inner[0].activation == "relu" and isinstance(inner[1], nn.Identity) and isinstance(inner[2], nn.ReLU)
    assert model[4].activation is None  # followed by a Sigmoid
    assert model[6].conv.activation is None and isinstance(model[6].relu, nn.ReLU)
    assert isinstance(model[9], nn.ReLU)  # after a Linear
    assert "activation='relu'" in repr(model[0])
    assert nn.fuse_conv_relu(model) == 0  # fusing again finds nothing new
