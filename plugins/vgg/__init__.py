"""VGG (Simonyan and Zisserman, 2014) as a minicnn plugin: depth from stacks of 3x3 convolutions.

The point of VGG (docs/en/tutorial.md §8; Simonyan and Zisserman, 2014): two stacked 3x3 convolutions see a 5x5 window, as one 5x5
convolution does, with 2 * 9 = 18 weights per input-output channel pair instead of 25, and one more
ReLU between them. VGG builds a whole network from that brick: stacks of 3x3 convolutions (padding
1, size kept), each stack closed by a 2x2 max pool that halves the map, and three fully connected
layers. Registered under the plugin name "vgg" through the `minicnn` entry-point group, built only
from minicnn's public API:

- "vgg11", "vgg13", "vgg16", "vgg19" (configurations A, B, D, E of the paper) and their "_bn"
  variants (BatchNorm2d after every convolution): torchvision's models for 3x224x224 inputs,
  parameter for parameter;
- the same names with "_small" ("vgg16_small", "vgg16_bn_small", ...): the same convolution
  stacks adapted to 28x28 and 32x32 inputs, as the CIFAR-10 VGGs are.
"""

from __future__ import annotations

from functools import partial

from minicnn import functional as F
from minicnn import hookimpl, nn

# Output channels of each 3x3 convolution, "M" for a 2x2 max pool; A, B, D and E in the paper.
CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_features(config: list, in_channels: int = 3, batch_norm: bool = False, ceil_mode: bool = False) -> nn.Sequential:
    """The convolution stacks: Conv 3x3 padding 1 [BatchNorm2d] ReLU per number, MaxPool 2x2 per "M".

    x: (N, in_channels, H, W) -> (N, 512, H/32, W/32), each pool rounding down (up with ceil_mode).
    Numbered as torchvision numbers them, so the names are features.0.weight, features.1.running_mean, ...
    """
    layers, channels = [], in_channels
    for entry in config:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
            continue
        layers.append(nn.Conv2d(channels, entry, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(entry))
        layers.append(nn.ReLU())
        channels = entry
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """torchvision's VGG: convolution stacks, a 7x7 adaptive average pool, three fully connected layers.

    input (in_channels, 224, 224); for vgg16 (configuration D):
      features     [Conv 3x3 64] x2, MaxPool 2x2            -> 64@112x112
                   [Conv 3x3 128] x2, MaxPool               -> 128@56x56
                   [Conv 3x3 256] x3, MaxPool               -> 256@28x28
                   [Conv 3x3 512] x3, MaxPool               -> 512@14x14
                   [Conv 3x3 512] x3, MaxPool               -> 512@7x7
      avgpool      AdaptiveAvgPool2d((7, 7))                 -> 512@7x7 (any input of at least 32x32)
      classifier   Linear 25088 -> 4096, ReLU, Dropout, Linear 4096 -> 4096, ReLU, Dropout,
                   Linear 4096 -> num_classes
    Each convolution is followed by ReLU, or by BatchNorm2d and ReLU with batch_norm=True. For 3
    channels and 1000 classes: vgg11 132,863,336 parameters, vgg13 133,047,848, vgg16 138,357,544,
    vgg19 143,667,240; with batch norm 132,868,840, 133,053,736, 138,365,992 and 143,678,248.

    The state_dict has torchvision's names, shapes and order (features.0.weight, for batch norm
    features.1.running_mean and features.1.num_batches_tracked, ... classifier.6.bias), so
    torchvision's weights, exported as arrays, load with `load_state_dict` and compute the same
    function. Initialised as torchvision does: convolutions Kaiming normal (fan_out, ReLU) with zero
    bias, batch norm weight 1 and bias 0, linear layers N(0, 0.01) with zero bias.
    """

    def __init__(self, config: str = "vgg16", batch_norm: bool = False, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.features = make_features(_config(config), in_channels, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = _classifier(512 * 7 * 7, 4096, num_classes, dropout)
        _initialise(self)

    def forward(self, x):
        """x: (N, in_channels, H, W), H and W at least 32 -> logits (N, num_classes)."""
        return self.classifier(F.flatten(self.avgpool(self.features(x)), 1))


class VGGSmall(nn.Module):
    """VGG adapted to 28x28 grey (MNIST, Fashion-MNIST) and 32x32 colour (CIFAR-10), as the CIFAR VGGs are.

    The five 2x2 pools take 32x32 to 1x1 but 28x28 below it (28, 14, 7, 3, 1, 0), and a 7x7 map
    of 512 channels is 25088 features for a 1x1 image, so:
    - the convolution stacks are VGG's own (same names and shapes as the ImageNet model's features);
    - every max pool rounds up (ceil_mode=True): 32x32 goes 16, 8, 4, 2, 1 as before, and 28x28
      goes 14, 7, 4, 2, 1;
    - AdaptiveAvgPool2d((1, 1)) replaces ((7, 7)), so the classifier sees 512 features (and larger
      inputs still work);
    - the classifier keeps its shape (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear, the
      same indices) with `hidden` = 512 units instead of 4096.

    input (in_channels, 32, 32), 28x28 in brackets; for vgg16_small:
      features     [Conv 3x3 64] x2, MaxPool 2x2 (ceil)     -> 64@16x16   (64@14x14)
                   [Conv 3x3 128] x2, MaxPool               -> 128@8x8    (128@7x7)
                   [Conv 3x3 256] x3, MaxPool               -> 256@4x4    (256@4x4)
                   [Conv 3x3 512] x3, MaxPool               -> 512@2x2    (512@2x2)
                   [Conv 3x3 512] x3, MaxPool               -> 512@1x1    (512@1x1)
      avgpool      AdaptiveAvgPool2d((1, 1))                 -> 512@1x1
      classifier   Linear 512 -> 512, ReLU, Dropout, Linear 512 -> 512, ReLU, Dropout, Linear 512 -> num_classes
    For 3 channels and 10 classes: the ImageNet model's feature parameters plus 530,442
    (vgg16_small 15,245,130). Initialised as `VGG`.
    """

    def __init__(self, config: str = "vgg16", batch_norm: bool = False, num_classes: int = 10,
                 in_channels: int = 3, dropout: float = 0.5, hidden: int = 512):
        super().__init__()
        self.features = make_features(_config(config), in_channels, batch_norm, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = _classifier(512, hidden, num_classes, dropout)
        _initialise(self)

    def forward(self, x):
        """x: (N, in_channels, H, W), H and W at least 1 -> logits (N, num_classes)."""
        return self.classifier(F.flatten(self.avgpool(self.features(x)), 1))


def _config(name: str) -> list:
    if name not in CONFIGS:
        raise ValueError(f"VGG: unknown configuration {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]


def _classifier(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear: torchvision's order and indices."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(hidden, num_classes),
    )


def _initialise(model: nn.Module) -> None:
    """torchvision's VGG initialisation (see `VGG`)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


@hookimpl
def minicnn_register_models(register):
    for name in CONFIGS:
        depth = name[3:]
        for batch_norm, suffix, extra in ((False, "", ""), (True, "_bn", " with batch norm")):
            register(f"{name}{suffix}", partial(VGG, name, batch_norm), input_size=(3, 224, 224),
                     description=f"VGG-{depth}{extra} (2014), torchvision's layout: only stacked 3x3 convolutions, two seeing a 5x5 window with 18 weights instead of 25")
            register(f"{name}{suffix}_small", partial(VGGSmall, name, batch_norm), input_size=(3, 32, 32),
                     description=f"VGG-{depth}{extra} for 28x28 and 32x32 inputs: the same 3x3 stacks, pools rounding up, a 1x1 pool and a 512-wide classifier")
