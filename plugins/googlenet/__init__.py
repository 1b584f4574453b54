"""GoogLeNet / Inception v1 (Szegedy et al., 2014) as a minicnn plugin.

GoogLeNet (docs/en/tutorial.md §8; Szegedy et al., 2014): Inception modules run 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1
branches side by side and join them on the channel axis, with 1x1 convolutions cutting the channels
first, so the network is deep and wide for few parameters. Registered under the plugin name
"googlenet" through the `minicnn` entry-point group, built only from minicnn's public API:
- googlenet        torchvision's layout and state_dict names, 3x224x224, 6,624,904 parameters;
- googlenet_small  the same Inception modules behind a one-convolution stem, 3x32x32 or 1x28x28.
"""

from __future__ import annotations

import minicnn
from minicnn_googlenet.googlenet import GoogLeNet, GoogLeNetOutputs, GoogLeNetSmall
from minicnn_googlenet.inception import BasicConv2d, Inception, InceptionAux

__all__ = ["BasicConv2d", "GoogLeNet", "GoogLeNetOutputs", "GoogLeNetSmall", "Inception", "InceptionAux"]


@minicnn.hookimpl
def minicnn_register_models(register):
    register("googlenet", GoogLeNet, input_size=(3, 224, 224),
             description="GoogLeNet (2014): Inception modules, torchvision's layout and weight names")
    register("googlenet_small", GoogLeNetSmall, input_size=(3, 32, 32),
             description="GoogLeNet for 32x32/28x28: a 3x3 stem, no early pools, a quarter of the width")
