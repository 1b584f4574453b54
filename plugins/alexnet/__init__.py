"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) as a minicnn plugin.

The three reasons it won ImageNet 2012 (docs/en/tutorial.md §8; Krizhevsky et al., 2012) are all here: ReLU after every convolution, Dropout
before the large fully connected layers, and overlapping max pooling (3x3 windows, stride 2). Its
GPU split (two towers) is gone, as in torchvision's single-tower layout; its local response
normalisation is an option. Registered under the plugin name "alexnet" through the `minicnn`
entry-point group, built only from minicnn's public API:

- "alexnet": torchvision's AlexNet for 3x224x224 inputs, parameter for parameter;
- "alexnet_small": the same network adapted to 28x28 and 32x32 inputs, small enough to train on a CPU.
"""

from __future__ import annotations

from minicnn import functional as F
from minicnn import hookimpl, nn

# Krizhevsky et al. 2012, section 3.3: k=2, n=5, alpha=1e-4, beta=0.75 in
# b = a / (k + alpha * sum of a^2 over n neighbouring channels)^beta. minicnn's LocalResponseNorm takes
# PyTorch's form, which divides alpha by the window size, so the paper's alpha is 5 * 1e-4 here.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 5e-4, 0.75, 2.0


def _features(stem: nn.Conv2d, lrn: bool) -> nn.Sequential:
    """The five convolutions and three overlapping pools after `stem`; LRN after the first two ReLUs."""
    def normalised():
        return [nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA, beta=LRN_BETA, k=LRN_K)] if lrn else []

    return nn.Sequential(
        stem, nn.ReLU(), *normalised(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(), *normalised(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _classifier(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear: torchvision's order and indices."""
    return nn.Sequential(
        nn.Dropout(p=dropout), nn.Linear(in_features, hidden), nn.ReLU(),
        nn.Dropout(p=dropout), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


class AlexNet(nn.Module):
    """torchvision's single-tower AlexNet: 61,100,840 parameters for 3 channels and 1000 classes.

    input (in_channels, 224, 224)
      features.0   Conv 11x11, stride 4, padding 2, 64   -> 64@55x55    ReLU
      features.2   MaxPool 3x3, stride 2 (overlapping)   -> 64@27x27
      features.3   Conv 5x5, padding 2, 192              -> 192@27x27   ReLU
      features.5   MaxPool 3x3, stride 2                 -> 192@13x13
      features.6   Conv 3x3, padding 1, 384              -> 384@13x13   ReLU
      features.8   Conv 3x3, padding 1, 256              -> 256@13x13   ReLU
      features.10  Conv 3x3, padding 1, 256              -> 256@13x13   ReLU
      features.12  MaxPool 3x3, stride 2                 -> 256@6x6
      avgpool      AdaptiveAvgPool2d((6, 6))              -> 256@6x6 (any input of at least 63x63)
      classifier   Dropout, Linear 9216 -> 4096, ReLU, Dropout, Linear 4096 -> 4096, ReLU,
                   Linear 4096 -> num_classes

    The state_dict has torchvision's names, shapes and order (features.0.weight ... classifier.6.bias),
    so torchvision's weights, exported as arrays, load with `load_state_dict` and compute the same
    function. Initialised as torchvision does: PyTorch's default layer initialisation.

    lrn=True puts LocalResponseNorm(size 5, k=2, beta=0.75, the paper's alpha=1e-4 on the plain
    sum) after the first two ReLUs, as in Krizhevsky et al. 2012. It adds no parameters, but the
    layers after each LRN move up one index, so the state_dict names are no longer torchvision's.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, lrn: bool = False):
        super().__init__()
        self.features = _features(nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), lrn)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(256 * 6 * 6, 4096, num_classes, dropout)

    def forward(self, x):
        """x: (N, in_channels, H, W), H and W at least 63 -> logits (N, num_classes)."""
        return self.classifier(F.flatten(self.avgpool(self.features(x)), 1))


class AlexNetSmall(nn.Module):
    """AlexNet adapted to 28x28 grey (MNIST, Fashion-MNIST) and 32x32 colour (CIFAR-10) inputs.

    ImageNet's stem (11x11, stride 4) and three stride-2 pools would shrink 32x32 to 0x0, so:
    - the stem is a 3x3 convolution, stride 1, padding 1 (size kept) instead of 11x11 stride 4;
    - the other four convolutions and the three overlapping 3x3 stride-2 max pools are AlexNet's
      own, so 32x32 ends at 256@3x3 and 28x28 at 256@2x2;
    - AdaptiveAvgPool2d((2, 2)) replaces ((6, 6)), so either size gives 256*2*2 = 1024 features;
    - the classifier keeps its shape (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear, the
      same indices) with `hidden` = 1024 units instead of 4096, so it trains on a CPU.

    input (in_channels, 32, 32)                  (28x28 in brackets)
      features.0   Conv 3x3, padding 1, 64      -> 64@32x32    (64@28x28)   ReLU
      features.2   MaxPool 3x3, stride 2        -> 64@15x15    (64@13x13)
      features.3   Conv 5x5, padding 2, 192     -> 192@15x15   (192@13x13)  ReLU
      features.5   MaxPool 3x3, stride 2        -> 192@7x7     (192@6x6)
      features.6, .8, .10  Conv 3x3 384, 256, 256 -> 256@7x7   (256@6x6)    ReLU each
      features.12  MaxPool 3x3, stride 2        -> 256@3x3     (256@2x2)
      avgpool      AdaptiveAvgPool2d((2, 2))     -> 256@2x2
      classifier   Linear 1024 -> 1024, 1024 -> 1024, 1024 -> num_classes, with Dropout and ReLU
    4,557,642 parameters for 3 channels and 10 classes. The feature layers carry the same names as
    "alexnet"'s, and from features.3 on the same shapes. lrn=True as in `AlexNet`.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5, lrn: bool = False,
                 hidden: int = 1024):
        super().__init__()
        self.features = _features(nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1), lrn)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = _classifier(256 * 2 * 2, hidden, num_classes, dropout)

    def forward(self, x):
        """x: (N, in_channels, H, W), H and W at least 15 -> logits (N, num_classes)."""
        return self.classifier(F.flatten(self.avgpool(self.features(x)), 1))


@hookimpl
def minicnn_register_models(register):
    register("alexnet", AlexNet, input_size=(3, 224, 224),
             description="AlexNet (2012), torchvision's layout: deeper and wider than LeNet, with ReLU, Dropout and overlapping pooling")
    register("alexnet_small", AlexNetSmall, input_size=(3, 32, 32),
             description="AlexNet for 28x28 and 32x32 inputs: 3x3 stride-1 stem, AlexNet's ReLU, Dropout and overlapping pools")
