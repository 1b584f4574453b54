"""minicnn's example third-party plugin: one custom layer (Swish), one model that uses it (tinynet)
and one optimizer (signsgd).

minicnn finds this module through the `minicnn` entry point declared in pyproject.toml and calls the
three hooks below, each of which registers what the plugin provides.
"""

from __future__ import annotations

import minicnn
from minicnn_example_plugin.signsgd import SignSGD
from minicnn_example_plugin.swish import Swish, SwishFunction, swish
from minicnn_example_plugin.tinynet import TinyNet

__version__ = "0.1.0"
__all__ = ["SignSGD", "Swish", "SwishFunction", "TinyNet", "swish"]


@minicnn.hookimpl
def minicnn_register_layers(register):
    register("Swish", Swish, example={"num_channels": 3}, input_size=(2, 3, 5, 5),
             description="x * sigmoid(beta * x) with beta learned per channel")


@minicnn.hookimpl
def minicnn_register_models(register):
    register("tinynet", TinyNet, input_size=(1, 28, 28),
             description="two 3x3 convolutions with Swish and max pooling, then one linear layer")


@minicnn.hookimpl
def minicnn_register_optimizers(register):
    register("signsgd", SignSGD, default_lr=1e-3,
             description="steps of lr in the direction of -sign(gradient) (Signum with momentum)")
