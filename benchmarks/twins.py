"""PyTorch twins of minicnn's registered models, for the benchmarks that compare the two frameworks.

A twin has minicnn's layout and state_dict names, so `load_minicnn_state` copies a minicnn model's
weights into it name by name and both start a comparison from the same numbers. Importing this
module needs PyTorch, which the benchmarks treat as optional: import it only where torch is present.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn


def lenet5() -> nn.Module:
    """LeNet-5 as plugins/lenet builds it: x (N, 1, 28, 28), padded by 2 in C1 -> logits (N, 10)."""
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),
        classifier=nn.Sequential(nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                 nn.Linear(84, 10)),
    ))


class BasicBlock(nn.Module):
    """plugins/resnet's CIFAR block: two 3x3 convolutions with batch norm, and the option-A shortcut
    (every other pixel when the stride is 2, zero channels appended). x: (N, cin, H, W) -> (N, cout, H/s, W/s)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(TF.relu(self.bn1(self.conv1(x)))))
        shortcut = TF.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))
        return TF.relu(out + shortcut)


class ResNet20(nn.Module):
    """plugins/resnet's ResNet-20 for CIFAR: x (N, 3, 32, 32) -> logits (N, 10); three stages of
    three blocks at 16, 32 and 64 channels, global average pooling, one linear layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*(BasicBlock(16, 16, 1) for _ in range(3)))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1), BasicBlock(32, 32, 1))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(TF.relu(self.bn1(self.conv1(x))))))
        return self.fc(x.mean((2, 3)))


TWINS = {"lenet5": lenet5, "resnet20": ResNet20}


def torch_twin(name: str) -> nn.Module:
    """A new PyTorch twin of the minicnn model registered as `name` (PyTorch's own initial weights)."""
    if name not in TWINS:
        raise ValueError(f"no PyTorch twin for model '{name}' (twins: {', '.join(TWINS)})")
    return TWINS[name]()


def load_minicnn_state(twin: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Copy minicnn's state_dict (NumPy arrays) into `twin` by name and return the twin. Strict:
    a name missing on either side, or a shape that differs, raises PyTorch's error naming it."""
    twin.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()})
    return twin
