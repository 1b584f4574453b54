"""The CIFAR-10 ResNets of He et al. (2015), section 4.2: depth 6n + 2, identity shortcuts.

    input (C, 32, 32)                                 (C, 28, 28)
      conv1 3x3, 16 (no bias), bn1, relu  -> 16@32x32    16@28x28
      layer1 n BasicBlocks of 16, stride 1 -> 16@32x32   16@28x28
      layer2 n BasicBlocks of 32, stride 2 -> 32@16x16   32@14x14
      layer3 n BasicBlocks of 64, stride 2 -> 64@8x8     64@7x7
      avgpool to 1x1, fc 64 -> num_classes
    n = 3, 5, 7, 9, 18 for resnet20, resnet32, resnet44, resnet56, resnet110.

Every shortcut is parameter-free ("option A"): x itself, or where a stage halves the size and
doubles the width, x[:, :, ::2, ::2] with zero channels appended (`ZeroPadShortcut`). So the
only parameters are those of the 6n + 1 convolutions, their batch norms and fc, and the names
read like torchvision's: conv1, bn1, layer1.0.conv1, layer1.0.bn1, ..., fc (there is no
downsample entry in the state_dict).
"""

from __future__ import annotations

from minicnn import nn

from .blocks import BasicBlock, ZeroPadShortcut, init_weights, make_stage


class CifarResNet(nn.Module):
    """conv 3x3 (16), three stages of n BasicBlocks (16, 32, 64 channels; strides 1, 2, 2), global
    average pooling, fc: 6n + 2 layers with weights, each block outputting F(x) + x.

    Made for 32x32 colour images; a 28x28 grey one (in_channels=1: MNIST, Fashion-MNIST) works as
    it is, the stages running at 28, 14 and 7. Initialised as the ImageNet ResNets are (He et al.'s
    normal, fan_out; batch norm 1 and 0).
    """

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, zero_init_residual: bool = False):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = make_stage(BasicBlock, 16, 16, blocks, 1, ZeroPadShortcut)
        self.layer2 = make_stage(BasicBlock, 16, 32, blocks, 2, ZeroPadShortcut)
        self.layer3 = make_stage(BasicBlock, 32, 64, blocks, 2, ZeroPadShortcut)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        init_weights(self, zero_init_residual)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def resnet20(num_classes: int = 10, in_channels: int = 3, **options) -> CifarResNet:
    """ResNet-20 (n = 3): 269,722 parameters for 3 channels and 10 classes."""
    return CifarResNet(20, num_classes, in_channels, **options)


def resnet32(num_classes: int = 10, in_channels: int = 3, **options) -> CifarResNet:
    """ResNet-32 (n = 5): 464,154 parameters."""
    return CifarResNet(32, num_classes, in_channels, **options)


def resnet44(num_classes: int = 10, in_channels: int = 3, **options) -> CifarResNet:
    """ResNet-44 (n = 7): 658,586 parameters."""
    return CifarResNet(44, num_classes, in_channels, **options)


def resnet56(num_classes: int = 10, in_channels: int = 3, **options) -> CifarResNet:
    """ResNet-56 (n = 9): 853,018 parameters."""
    return CifarResNet(56, num_classes, in_channels, **options)


def resnet110(num_classes: int = 10, in_channels: int = 3, **options) -> CifarResNet:
    """ResNet-110 (n = 18): 1,727,962 parameters."""
    return CifarResNet(110, num_classes, in_channels, **options)
