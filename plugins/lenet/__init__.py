"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998) as a minicnn plugin.

Registered under the plugin name "lenet" through the `minicnn` entry-point group, and built only
from minicnn's public API, exactly as a third-party plugin would be.
"""

from __future__ import annotations

import minicnn
from minicnn import nn


class LeNet5(nn.Module):
    """LeNet-5 (docs/en/tutorial.md §8; LeCun et al., 1998): convolution, pooling, convolution, pooling, three fully connected layers.

    input (in_channels, 28, 28), padded by 2 to the paper's 32x32
      C1  Conv 5x5, 6 filters      -> 6@28x28
      S2  MaxPool 2x2, stride 2    -> 6@14x14
      C3  Conv 5x5, 16 filters     -> 16@10x10
      S4  MaxPool 2x2, stride 2    -> 16@5x5
      F5  Linear 400 -> 120, F6 Linear 120 -> 84, output Linear 84 -> num_classes
    61,706 parameters for one input channel and ten classes (C3 fully connected to S2, pooling
    without parameters). ReLU activations and max pooling, as modern reproductions use; for a
    32x32 input (CIFAR-10) pass padding=0.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, padding: int = 2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@minicnn.hookimpl
def minicnn_register_models(register):
    register("lenet5", LeNet5, input_size=(1, 28, 28), description="LeNet-5 (1998): conv-pool-conv-pool-fc, the first CNN to read digits")
