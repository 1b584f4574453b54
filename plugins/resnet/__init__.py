"""ResNet (He, Zhang, Ren and Sun, 2015) as a minicnn plugin: residual learning, F(x) + x.

Instead of fitting the wanted mapping H(x) directly, each block fits the residual F(x) = H(x) - x
and outputs F(x) + x; the skip connection carries x (and, backwards, the gradient) past the block
unchanged, which is what let networks of 152 and even 1000 layers train.

Two families, registered under the plugin name "resnet":
- resnet18, resnet34, resnet50, resnet101, resnet152 (`imagenet.py`): torchvision's layout and
  state_dict names, projection shortcuts where shapes change; default input 3x224x224, 1000 classes;
- resnet20, resnet32, resnet44, resnet56, resnet110 (`cifar.py`): the paper's CIFAR-10 networks,
  depth 6n + 2, parameter-free zero-padding shortcuts; default input 3x32x32, 10 classes.

Every model takes num_classes and in_channels, and every one accepts 28x28 and 32x32 inputs.
Built only from minicnn's public API, exactly as a third-party plugin would be.
"""

from __future__ import annotations

import minicnn

from .blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from .cifar import CifarResNet, resnet20, resnet32, resnet44, resnet56, resnet110
from .imagenet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152

__all__ = [
    "BasicBlock", "Bottleneck", "CifarResNet", "ResNet", "ZeroPadShortcut", "resnet18", "resnet20", "resnet32",
    "resnet34", "resnet44", "resnet50", "resnet56", "resnet101", "resnet110", "resnet152",
]

IMAGENET = (
    (resnet18, "2-2-2-2 basic blocks"),
    (resnet34, "3-4-6-3 basic blocks"),
    (resnet50, "3-4-6-3 bottlenecks"),
    (resnet101, "3-4-23-3 bottlenecks"),
    (resnet152, "3-8-36-3 bottlenecks"),
)
CIFAR = ((resnet20, 3), (resnet32, 5), (resnet44, 7), (resnet56, 9), (resnet110, 18))


@minicnn.hookimpl
def minicnn_register_models(register):
    for factory, layout in IMAGENET:
        register(factory.__name__, factory, input_size=(3, 224, 224),
                 description=f"ResNet (2015), ImageNet: {layout}, each outputs F(x) + x")
    for factory, n in CIFAR:
        register(factory.__name__, factory, input_size=(3, 32, 32),
                 description=f"ResNet (2015), CIFAR: 3 stages of {n} blocks, each outputs F(x) + x")
