"""GoogLeNet's building blocks, named as torchvision names them so its weights load unchanged.

BasicConv2d   convolution without bias, batch norm (eps 0.001), ReLU
Inception     four parallel branches joined on the channel axis (Szegedy et al. 2014, after Lin et al.'s "network in network")
InceptionAux  the auxiliary classifier hung on an intermediate stage while training
"""

from __future__ import annotations

from minicnn import functional as F
from minicnn import nn


class BasicConv2d(nn.Module):
    """Conv2d(bias=False) -> BatchNorm2d(eps=0.001) -> ReLU, as `.conv` and `.bn`.

    x: (N, in_channels, H, W) -> (N, out_channels, oH, oW), sizes as Conv2d's. The convolution has
    no bias because batch norm's shift replaces it. The ReLU is a function call, not a child
    module, so the module tree (and state_dict) is torchvision's exactly.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Szegedy et al. (2014), Inception module with dimension reductions.

    x: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W); every branch keeps H, W:
      branch1  1x1 conv                                   -> ch1x1
      branch2  1x1 conv to ch3x3red -> 3x3 conv (pad 1)   -> ch3x3
      branch3  1x1 conv to ch5x5red -> kxk conv (pad k//2) -> ch5x5
      branch4  3x3 max pool (stride 1, pad 1) -> 1x1 conv -> pool_proj
    The 1x1 convolutions before the 3x3 and 5x5 cut the channels they see, which is where the
    savings in parameters and multiply-adds come from.

    branch3_kernel_size: 3 is torchvision's layout (a known deviation from the paper, kept so its
    weights load); 5 is the paper's 5x5.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, branch3_kernel_size: int = 3):
        super().__init__()
        if branch3_kernel_size not in (3, 5):
            raise ValueError(
                f"Inception: branch3_kernel_size must be 3 (torchvision) or 5 (the paper), got {branch3_kernel_size}"
            )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=branch3_kernel_size, padding=branch3_kernel_size // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        return F.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """An auxiliary classifier: extra gradient for the middle of a deep network while training.

    x: (N, in_channels, H, W) -> average to (N, in_channels, 4, 4) -> 1x1 conv to conv_channels
    -> flatten (N, 16*conv_channels) -> fc1 to hidden, ReLU, dropout -> fc2 (N, num_classes).
    torchvision's sizes are conv_channels=128, hidden=1024, dropout=0.7 (the paper's).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7, conv_channels: int = 128,
                 hidden: int = 1024):
        super().__init__()
        self.conv = BasicConv2d(in_channels, conv_channels, kernel_size=1)
        self.fc1 = nn.Linear(conv_channels * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(F.flatten(x, 1)))
        return self.fc2(self.dropout(x))
