"""The built-in layers plugin: registers minicnn.nn's layers so model specs can name them.

It is a plugin like any other (one hook, one `register` call per layer), loaded from
`minicnn.plugin.manager.BUILTIN_PLUGINS`; each registration carries a small example for `minicnn check`.
"""

from __future__ import annotations

from minicnn import nn
from minicnn.plugin.hookspecs import hookimpl

_EXAMPLES = {
    "Conv2d": ({"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1}, (2, 3, 6, 6)),
    "Linear": ({"in_features": 5, "out_features": 3}, (2, 5)),
    "MaxPool2d": ({"kernel_size": 2}, (2, 3, 6, 6)),
    "AvgPool2d": ({"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 7, 7)),
    "AdaptiveAvgPool2d": ({"output_size": 2}, (2, 3, 5, 5)),
    "BatchNorm1d": ({"num_features": 3}, (4, 3)),
    "BatchNorm2d": ({"num_features": 3}, (2, 3, 4, 4)),
    "LocalResponseNorm": ({"size": 3, "alpha": 0.1, "k": 2.0}, (2, 5, 3, 3)),
    "Dropout": ({"p": 0.5}, (2, 3, 4, 4)),
    "Softmax": ({"dim": 1}, (2, 5)),
    "LogSoftmax": ({"dim": 1}, (2, 5)),
    "Flatten": ({}, (2, 3, 4, 4)),
}


@hookimpl
def minicnn_register_layers(register):
    for layer in nn.LAYERS:
        example, input_size = _EXAMPLES.get(layer.__name__, ({}, (2, 3, 4, 4)))
        first_sentence = (layer.__doc__ or "").strip().split(". ")[0].split("\n")[0].rstrip(".:")
        register(layer.__name__, layer, example=example, input_size=input_size, description=first_sentence)
