"""minicnn: a small, readable deep-learning framework for convolutional networks.

    import minicnn as mc
    import minicnn.functional as F

    x = mc.tensor(image, requires_grad=True)        # image: (N, C, H, W)
    loss = F.cross_entropy(model(x), labels)
    loss.backward()
"""

from minicnn import functional, testing
from minicnn.autograd import Function, Tensor, is_grad_enabled, no_grad, set_debug, tensor
from minicnn.backend import Device, DeviceError, device, manual_seed

__version__ = "0.1.0"

__all__ = [
    "Device", "DeviceError", "Function", "Tensor", "device", "functional", "is_grad_enabled",
    "manual_seed", "no_grad", "set_debug", "tensor", "testing",
]
