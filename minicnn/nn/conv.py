"""Convolution and fully connected layers: the two layer kinds with weights."""

from __future__ import annotations

import math

import numpy as np

from minicnn import functional as F
from minicnn.nn import arguments, init
from minicnn.nn.module import Module, Parameter


def _empty(*shape) -> Parameter:
    return Parameter(np.zeros(shape, dtype=np.float32))


class Conv2d(Module):
    """A bank of `out_channels` learned filters slid over the input (cross-correlation).

    x: (N, in_channels, H, W) -> (N, out_channels, oH, oW); weight: (out_channels,
    in_channels/groups, kH, kW); bias: (out_channels,). padding: int, pair, 'valid', 'same' or
    'full'. Initialised as PyTorch does: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    `activation` (None, or "relu" once `nn.fuse_conv_relu` has fused the ReLU that followed) is
    applied in the convolution's own epilogue.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True):
        super().__init__()
        self.in_channels = arguments.positive_int(self, "in_channels", in_channels)
        self.out_channels = arguments.positive_int(self, "out_channels", out_channels)
        self.kernel_size = arguments.positive_pair(self, "kernel_size", kernel_size)
        self.stride = arguments.positive_pair(self, "stride", stride)
        self.padding = arguments.padding(self, "padding", padding, modes=("valid", "same", "full"))
        self.dilation = arguments.positive_pair(self, "dilation", dilation)
        self.groups = arguments.positive_int(self, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{type(self).__name__}: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError(
                f"{type(self).__name__}: padding='same' needs stride 1, got stride={stride}; give the padding as numbers"
            )
        self.activation = None
        self.weight = _empty(self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.bias = _empty(self.out_channels) if arguments.flag(self, "bias", bias) else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(init.fan_in_and_fan_out(self.weight)[0])
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                        activation=self.activation)

    def multiply_adds(self, input_shape, output_shape) -> int:
        per_output = (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]
        return int(np.prod(output_shape)) * per_output

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        text += "" if self.bias is not None else ", bias=False"
        return text + (f", activation='{self.activation}'" if self.activation else "")


class Linear(Module):
    """Fully connected: y = x W^T + b. x: (N, *, in_features) -> (N, *, out_features).
    Initialised as PyTorch does: U(-1/sqrt(in_features), 1/sqrt(in_features))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = arguments.positive_int(self, "in_features", in_features)
        self.out_features = arguments.positive_int(self, "out_features", out_features)
        self.weight = _empty(self.out_features, self.in_features)
        self.bias = _empty(self.out_features) if arguments.flag(self, "bias", bias) else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def multiply_adds(self, input_shape, output_shape) -> int:
        return int(np.prod(output_shape)) * self.in_features

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
