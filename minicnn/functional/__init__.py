"""Every differentiable op as a function: `import minicnn.functional as F`.

Each op is a Function (forward and backward over raw arrays) with a one-line function in front;
the array module and kernels are picked from the inputs' device.
"""

from minicnn.functional import tensor_methods
from minicnn.functional.activation import log_softmax, relu, sigmoid, softmax, tanh
from minicnn.functional.conv import conv2d, convolve, correlate
from minicnn.functional.dropout import dropout
from minicnn.functional.loss import cross_entropy, mse_loss
from minicnn.functional.math import (
    add, argmax, argmin, div, exp, linear, log, matmul, max, mean, min, mul, neg, pow, sub, sum,
)
from minicnn.functional.norm import batch_norm, local_response_norm
from minicnn.functional.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from minicnn.functional.shape import cat, flatten, getitem, pad, permute, reshape, to, transpose

tensor_methods.install()

__all__ = [
    "adaptive_avg_pool2d", "add", "argmax", "argmin", "avg_pool2d", "batch_norm", "cat", "conv2d", "convolve", "correlate",
    "cross_entropy", "div", "dropout", "exp", "flatten", "getitem", "linear", "local_response_norm", "log",
    "log_softmax", "matmul", "max", "max_pool2d", "mean", "min", "mse_loss", "mul", "neg", "pad", "permute", "pow",
    "relu", "reshape", "sigmoid", "softmax", "sub", "sum", "tanh", "to", "transpose",
]
