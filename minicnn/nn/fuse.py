"""Fusing each convolution with the ReLU right after it.

`Conv2d -> ReLU` reads and writes the whole feature map twice; with the ReLU fused into the
convolution's epilogue (the pass that already adds the bias and lays out the output) it is done
once, and the convolution's saved output replaces the ReLU's. `minicnn train` fuses every model it
trains; PyTorch users know the idea from `torch.ao.quantization.fuse_modules`.
"""

from __future__ import annotations

from minicnn.nn.activation import ReLU
from minicnn.nn.containers import Sequential
from minicnn.nn.conv import Conv2d
from minicnn.nn.module import Module
from minicnn.nn.shape import Identity


def fuse_conv_relu(model: Module) -> int:
    """In every Sequential inside `model`, give each Conv2d directly followed by a ReLU the
    activation "relu" and put an Identity where the ReLU was; returns how many pairs were fused.

    Outputs, gradients, parameters and state_dict keys stay the same (a ReLU has no state).
    Layers called one by one in a custom forward (a ResNet block's `self.relu`) are left alone.
    """
    fused = 0
    for module in model.modules():
        if not isinstance(module, Sequential):
            continue
        children = list(module._modules.items())
        for (_, first), (name, second) in zip(children, children[1:]):
            if isinstance(first, Conv2d) and first.activation is None and type(second) is ReLU:
                first.activation = "relu"
                module._modules[name] = Identity()
                fused += 1
    return fused
