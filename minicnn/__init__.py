"""minicnn: a small, readable deep-learning framework for convolutional networks.

    import minicnn as mc
    import minicnn.functional as F

    model = mc.create_model("lenet5")               # registered by a plugin
    loss = F.cross_entropy(model(images), labels)   # images: (N, 1, 28, 28)
    loss.backward()
"""

__version__ = "0.1.0"

from minicnn import data, functional, nn, optim, testing  # noqa: E402
from minicnn.autograd import Function, Tensor, is_grad_enabled, no_grad, set_debug, tensor  # noqa: E402
from minicnn.backend import Device, DeviceError, device, get_array_module, gpu_available, manual_seed  # noqa: E402
from minicnn.hookspecs import hookimpl  # noqa: E402
from minicnn.plugins import (  # noqa: E402
    PluginError, create_model, get_layer, list_datasets, list_layers, list_models, plugin_system, reload_plugins,
)
from minicnn.registry import RegistryError  # noqa: E402
from minicnn.spec import SpecError, build_model  # noqa: E402
from minicnn.summary import summarize  # noqa: E402

__all__ = [
    "Device", "DeviceError", "data", "Function", "PluginError", "RegistryError", "SpecError", "Tensor", "build_model",
    "create_model", "device", "get_array_module", "gpu_available", "summarize",
    "functional", "get_layer", "hookimpl", "is_grad_enabled", "list_datasets", "list_layers", "list_models",
    "manual_seed", "nn", "no_grad", "optim", "plugin_system", "reload_plugins", "set_debug", "tensor", "testing",
]
