"""Residual blocks: F(x) + x (docs/en/tutorial.md §8), in the two shapes He et al. (2015) use, and the
parameter-free shortcut of their CIFAR networks.

A block learns the residual F(x) = H(x) - x and outputs relu(F(x) + x): the "+ x" is the skip
connection. When F is zero the block passes x on unchanged (after the ReLU), so adding blocks
cannot make the network worse than its shallower self, and the gradient reaches earlier layers
through the addition undiminished. Where F changes the shape (stride 2, more channels), x is
brought to the new shape by a `downsample` module: a 1x1 convolution and batch norm (projection,
"option B", torchvision's ImageNet ResNets) or `ZeroPadShortcut` (identity with zero padding,
"option A", the CIFAR ResNets).

Attribute names and their order are torchvision's (`conv1`, `bn1`, ..., `downsample`), so a
state_dict reads and loads the same.
"""

from __future__ import annotations

import minicnn.functional as F
from minicnn import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (batch norm follows): (N, C, H, W) -> (N, out, ceil(H/s), ceil(W/s))."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias: mixes channels; with stride 2 it keeps every other position."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """The projection shortcut ("option B"): conv1x1 with the block's stride, then batch norm.
    Named `downsample.0` and `downsample.1` in a state_dict, as in torchvision."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


def make_stage(block: type, in_planes: int, channels: int, blocks: int, stride: int, shortcut) -> nn.Sequential:
    """One stage of a ResNet: `blocks` blocks of `block` at width `channels`, the first with
    `stride` and, when it changes the shape, shortcut(in_planes, channels * expansion, stride) as
    its downsample. (N, in_planes, H, W) -> (N, channels * block.expansion, H/stride, W/stride)."""
    out_planes = channels * block.expansion
    downsample = shortcut(in_planes, out_planes, stride) if stride != 1 or in_planes != out_planes else None
    stage = nn.Sequential(block(in_planes, channels, stride, downsample))
    for _ in range(1, blocks):
        stage.append(block(out_planes, channels))
    return stage


class ZeroPadShortcut(nn.Module):
    """The identity shortcut of He et al.'s CIFAR ResNets ("option A"): no parameters.

    x: (N, C_in, H, W) -> (N, C_out, ceil(H/s), ceil(W/s)): keep every s-th position
    (x[:, :, ::s, ::s]) and append C_out - C_in channels of zeros after the C_in channels of x,
    as the reference Torch code does (concatenating x with zeros).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ZeroPadShortcut: out_channels={out_channels} must be at least in_channels={in_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and the skip connection: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    x: (N, in_channels, H, W) -> (N, channels, ceil(H/s), ceil(W/s)), s = stride (on conv1).
    downsample: None (the shortcut is x itself; the shapes must then agree), or a module bringing
    x to the output's shape.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def residual(self, x):
        """F(x), the branch the block learns."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)

    def last_norm(self) -> nn.BatchNorm2d:
        """The batch norm that ends F; a zero weight there makes F(x) = 0 (torchvision's zero_init_residual)."""
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), and the skip connection (torchvision's "v1.5": stride on the 3x3).

    relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x));
    x: (N, in_channels, H, W) -> (N, 4*channels, ceil(H/s), ceil(W/s)). The 1x1 convolutions keep
    the 3x3 one narrow, so a 50-layer network costs little more than a 34-layer one.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def residual(self, x):
        """F(x), the branch the block learns."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)

    def last_norm(self) -> nn.BatchNorm2d:
        """The batch norm that ends F; a zero weight there makes F(x) = 0."""
        return self.bn3


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He et al.'s initialisation, as torchvision does it: every convolution N(0, 2/fan_out)
    (kaiming_normal_, mode fan_out, relu), batch norm weight 1 and bias 0; Linear keeps its default.

    zero_init_residual: start every block's last batch norm at weight 0, so each block begins as
    the identity map (F(x) = 0) and the network as a shallow one (Goyal et al., 2017).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if zero_init_residual:
        for module in model.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                nn.init.zeros_(module.last_norm().weight)
