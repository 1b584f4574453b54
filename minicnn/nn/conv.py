"""Convolution and fully connected layers: the two layer kinds with weights."""

from __future__ import annotations

import math

import numpy as np

from minicnn import functional as F
from minicnn.functional.sizes import pair
from minicnn.nn import init
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
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "Conv2d kernel_size")
        self.stride, self.dilation = pair(stride, "Conv2d stride"), pair(dilation, "Conv2d dilation")
        self.padding = padding if isinstance(padding, str) else pair(padding, "Conv2d padding")
        self.groups = groups
        self.activation = None
        self.weight = _empty(out_channels, in_channels // groups, *self.kernel_size)
        self.bias = _empty(out_channels) if bias else None
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
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features)
        self.bias = _empty(out_features) if bias else None
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
