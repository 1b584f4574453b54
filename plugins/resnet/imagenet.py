"""The ImageNet ResNets of He et al. (2015), laid out as torchvision lays them out.

    input (C, 224, 224)
      conv1  7x7, 64, stride 2, padding 3 (no bias), bn1, relu   -> 64@112x112
      maxpool 3x3, stride 2, padding 1                           -> 64@56x56
      layer1 blocks of 64 channels, stride 1                      -> 64e@56x56
      layer2 blocks of 128 channels, stride 2 in the first block  -> 128e@28x28
      layer3 blocks of 256 channels, stride 2                     -> 256e@14x14
      layer4 blocks of 512 channels, stride 2                     -> 512e@7x7
      avgpool to 1x1, fc 512e -> num_classes
    e = 1 (BasicBlock: resnet18, resnet34) or 4 (Bottleneck: resnet50, resnet101, resnet152).

Parameter and buffer names, shapes and their order in `state_dict()` are torchvision's
(`layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`, `layer2.0.downsample.1.running_mean`, ...),
so torchvision weights exported as NumPy arrays load with `load_state_dict` and compute the same
function.
"""

from __future__ import annotations

from minicnn import nn

from .blocks import BasicBlock, Bottleneck, init_weights, make_stage, projection


class ResNet(nn.Module):
    """A stem, four stages of residual blocks (each block outputs F(x) + x), global pooling, a classifier.

    block: BasicBlock or Bottleneck; layers: blocks per stage, e.g. (2, 2, 2, 2) for resnet18.
    The first block of a stage that halves the size or changes the width gets a projection
    shortcut (conv1x1 + batch norm, "option B"); every other shortcut is x itself.

    Small inputs: with the ImageNet stem a 28x28 image becomes 14x14 after conv1, 7x7 after the
    max pool, then 7, 4, 2 and 1 after the four stages (a 32x32 one: 16, 8, 8, 4, 2, 1); with
    padding no stage ever goes below 1x1, so MNIST, Fashion-MNIST and CIFAR-10 train as they are,
    cheaply but throwing away most of the resolution at the stem. small_input=True swaps the stem
    for a 3x3, stride 1 conv1 and no max pool (the usual CIFAR adaptation): a 32x32 image then
    reaches the stages at 32x32 and leaves layer4 at 4x4, at about 15 times the cost. Only
    conv1.weight changes shape (64, in_channels, 3, 3); every name stays the same.
    """

    def __init__(self, block: type, layers, num_classes: int = 1000, in_channels: int = 3,
                 zero_init_residual: bool = False, small_input: bool = False):
        super().__init__()
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        wide = block.expansion
        self.layer1 = make_stage(block, 64, 64, layers[0], 1, projection)
        self.layer2 = make_stage(block, 64 * wide, 128, layers[1], 2, projection)
        self.layer3 = make_stage(block, 128 * wide, 256, layers[2], 2, projection)
        self.layer4 = make_stage(block, 256 * wide, 512, layers[3], 2, projection)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self, zero_init_residual)

    def stem(self, x):
        """(N, C, H, W) -> (N, 64, H/4, W/4) (H, W with small_input)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    """ResNet-18: BasicBlocks (2, 2, 2, 2); 11,689,512 parameters for 3 channels and 1000 classes."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, **options)


def resnet34(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    """ResNet-34: BasicBlocks (3, 4, 6, 3); 21,797,672 parameters."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, **options)


def resnet50(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    """ResNet-50: Bottlenecks (3, 4, 6, 3); 25,557,032 parameters."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, **options)


def resnet101(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    """ResNet-101: Bottlenecks (3, 4, 23, 3); 44,549,160 parameters."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes, in_channels, **options)


def resnet152(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    """ResNet-152: Bottlenecks (3, 8, 36, 3); 60,192,808 parameters."""
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes, in_channels, **options)
