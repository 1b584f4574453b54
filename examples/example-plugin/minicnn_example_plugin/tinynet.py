"""TinyNet: the smallest useful CNN for 28x28 digits, built with the plugin's Swish layer."""

from __future__ import annotations

from minicnn import nn
from minicnn_example_plugin.swish import Swish


class TinyNet(nn.Module):
    """Two 3x3 convolutions, each followed by Swish and 2x2 max pooling, then one linear layer.

    input (in_channels, 28, 28)
      Conv 3x3, width filters, padding 1     -> width@28x28, Swish
      MaxPool 2x2                            -> width@14x14
      Conv 3x3, 2*width filters, padding 1   -> 2*width@14x14, Swish
      MaxPool 2x2                            -> 2*width@7x7
      Linear 2*width*49 -> num_classes
    9,122 parameters for one input channel, ten classes and width 8.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            Swish(width),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            Swish(2 * width),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 7 * 7, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
