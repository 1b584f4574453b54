"""Layers with state: `Module`, `Parameter`, containers and the standard layers (PyTorch's names,
constructor signatures and default initialisations). `import minicnn.nn as nn`."""

from minicnn.nn import init
from minicnn.nn.activation import LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from minicnn.nn.containers import ModuleList, Sequential
from minicnn.nn.conv import Conv2d, Linear
from minicnn.nn.fuse import fuse_conv_relu
from minicnn.nn.module import Module, Parameter
from minicnn.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from minicnn.nn.regularization import BatchNorm1d, BatchNorm2d, Dropout, LocalResponseNorm
from minicnn.nn.shape import Flatten, Identity

LAYERS = (
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Identity, Linear,
    LocalResponseNorm, LogSoftmax, MaxPool2d, ReLU, Sigmoid, Softmax, Tanh,
)

__all__ = [cls.__name__ for cls in LAYERS] + ["Module", "ModuleList", "Parameter", "Sequential", "fuse_conv_relu", "init"]
