"""GoogLeNet (Inception v1): torchvision's ImageNet layout, and a small-input variant for 28x28 and 32x32."""

from __future__ import annotations

from typing import NamedTuple

from minicnn import functional as F
from minicnn import nn
from minicnn_googlenet.inception import BasicConv2d, Inception, InceptionAux

# The paper's Table 1 (and torchvision's): name, then ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj.
INCEPTION_STAGES = (
    ("inception3a", 64, 96, 128, 16, 32, 32),
    ("inception3b", 128, 128, 192, 32, 96, 64),
    ("inception4a", 192, 96, 208, 16, 48, 64),
    ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64),
    ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128),
    ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
)


class GoogLeNetOutputs(NamedTuple):
    """What a model with auxiliary heads returns in training mode: torchvision's order and names.
    Train on logits + 0.3 * (aux_logits1 + aux_logits2) as the paper weights them."""

    logits: object
    aux_logits2: object
    aux_logits1: object


class _InceptionNetwork(nn.Module):
    """The nine Inception modules, their two pools, the optional auxiliary heads and the classifier,
    shared by both layouts; a subclass builds its stem first and says how to run it in `stem`.

    In training mode with aux_logits=True, forward returns GoogLeNetOutputs(logits, aux_logits2,
    aux_logits1), as torchvision does; otherwise (eval mode, or no auxiliary heads) just the logits.
    """

    def stem(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define stem()")

    def _build_body(self, in_channels: int, num_classes: int, aux_logits: bool, paper_5x5: bool, width: float,
                    dropout: float, dropout_aux: float) -> None:
        self.aux_logits = aux_logits
        stages = {}
        for name, *channels in INCEPTION_STAGES:
            block = Inception(in_channels, *(_scaled(c, width) for c in channels),
                              branch3_kernel_size=5 if paper_5x5 else 3)
            stages[name] = block
            setattr(self, name, block)
            in_channels = block.out_channels
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        if aux_logits:
            head = {"dropout": dropout_aux, "conv_channels": _scaled(128, width), "hidden": _scaled(1024, width)}
            self.aux1 = InceptionAux(stages["inception4a"].out_channels, num_classes, **head)
            self.aux2 = InceptionAux(stages["inception4d"].out_channels, num_classes, **head)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def _init_weights(self) -> None:
        """torchvision's: conv and linear weights N(0, 0.01); batch norm weight 1, bias 0 (already
        so); linear biases keep PyTorch's default U(-1/sqrt(in), 1/sqrt(in)). torchvision calls
        trunc_normal_(std=0.01, a=-2, b=2), whose bounds are absolute, 200 standard deviations out,
        so its draw is a plain normal too."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.01)

    def forward(self, x):
        x = self.maxpool3(self.inception3b(self.inception3a(self.stem(x))))
        x = self.inception4a(x)
        with_aux = self.aux_logits and self.training
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(F.flatten(self.avgpool(x), 1)))
        return GoogLeNetOutputs(x, aux2, aux1) if with_aux else x


class GoogLeNet(_InceptionNetwork):
    """GoogLeNet (Szegedy et al., 2014) in torchvision's layout, for 3x224x224 ImageNet images.

    input (in_channels, 224, 224)
      conv1     7x7/2 conv, 64            -> 64@112x112
      maxpool1  3x3/2 (ceil)              -> 64@56x56
      conv2     1x1 conv, 64; conv3 3x3 conv, 192 -> 192@56x56
      maxpool2  3x3/2 (ceil)              -> 192@28x28
      inception3a, 3b                     -> 256@28x28, 480@28x28
      maxpool3  3x3/2 (ceil)              -> 480@14x14
      inception4a ... 4e                  -> 512, 512, 512, 528, 832 @14x14  (aux1 after 4a, aux2 after 4d)
      maxpool4  2x2/2 (ceil)              -> 832@7x7
      inception5a, 5b                     -> 832@7x7, 1024@7x7
      global average pool, dropout 0.2, fc 1024 -> num_classes
    Every convolution is a BasicConv2d (conv without bias, batch norm, ReLU): torchvision's
    batch-normalised version, not the paper's plain convolutions and local response norm.

    6,624,904 parameters without the auxiliary heads, 13,004,888 with them (torchvision's counts):
    1/9.2 of AlexNet's 61,100,840, or 1/4.7 with the heads. The paper's "12 times fewer" compares
    its own count of roughly 5 million with Krizhevsky's 60 million.

    aux_logits: False by default, unlike torchvision's weights=None default of True, so that the
    model is the headline 6.6 million parameters and returns plain logits that `minicnn train`'s
    cross-entropy takes; with True the state_dict gains torchvision's aux1.* and aux2.* names.
    paper_5x5: branch3 ends in the paper's 5x5 convolution instead of torchvision's 3x3 (more
    parameters, and torchvision weights no longer load). torchvision's transform_input (off for
    weights=None) is not offered: normalise inputs in the data pipeline instead.
    The stem divides the input by 8 before inception3a and the later pools by 4 more: a 32x32 input
    reaches inception5 at 1x1, and so does a 28x28 one (maxpool4's ceil-mode window then overhangs a
    1x1 map), so their 3x3 branches see mostly padding. Small images take `googlenet_small`.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                 paper_5x5: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7, init_weights: bool = True):
        super().__init__()
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._build_body(192, num_classes, aux_logits, paper_5x5, 1.0, dropout, dropout_aux)
        if init_weights:
            self._init_weights()

    def stem(self, x):
        x = self.maxpool1(self.conv1(x))
        return self.maxpool2(self.conv3(self.conv2(x)))


class GoogLeNetSmall(_InceptionNetwork):
    """GoogLeNet for 28x28 grey (MNIST, Fashion-MNIST) and 32x32 colour (CIFAR-10) images.

    The ImageNet stem divides the input by 8 before inception3a and the two later pools by 4 more,
    so a 32x32 image would reach inception3a at 4x4 and inception5 at 1x1. Here the stem is one 3x3
    convolution (padding 1, stride 1) and no pooling, the common CIFAR adaptation, so the Inception
    modules see:
      conv1  3x3 BasicConv2d, 192*width channels  -> 32x32 (28x28)
      inception3a, 3b                             -> 32x32 (28x28)
      maxpool3 3x3/2 (ceil)                       -> 16x16 (14x14)
      inception4a ... 4e                          -> 16x16 (14x14)
      maxpool4 2x2/2 (ceil)                       -> 8x8 (7x7)
      inception5a, 5b, global average pool, dropout, fc
    The modules, pools and names after the stem are GoogLeNet's; every channel count (the stem's,
    each branch's, and the auxiliary heads' 128 and 1024) is multiplied by `width` and rounded.
    width=0.25 (the default) has 1/16 of the full width's multiply-adds (85 million for a 32x32
    image instead of 1.3 billion) and about 1/16 of its parameters, so a CPU can train it, if
    slowly; width=1 is the full-width network.
    Any input of 4x4 or more runs; the registered default is 3x32x32.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 0.25, aux_logits: bool = False,
                 paper_5x5: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7, init_weights: bool = True):
        super().__init__()
        if width <= 0:
            raise ValueError(f"GoogLeNetSmall: width must be positive, got {width}")
        self.conv1 = BasicConv2d(in_channels, _scaled(192, width), kernel_size=3, padding=1)
        self._build_body(_scaled(192, width), num_classes, aux_logits, paper_5x5, width, dropout, dropout_aux)
        if init_weights:
            self._init_weights()

    def stem(self, x):
        return self.conv1(x)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))
