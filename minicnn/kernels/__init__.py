"""Device kernels: array-level building blocks with no autograd, one module per device."""

from __future__ import annotations

from minicnn.backend import DeviceError, device_of
from minicnn.kernels import cpu


def kernels_for(array):
    """The kernel module for the device `array` lives on."""
    where = device_of(array)
    if where.type != "cpu":
        raise DeviceError(f"this build of minicnn has no convolution or pooling kernels for {where}; use device='cpu'")
    return cpu
