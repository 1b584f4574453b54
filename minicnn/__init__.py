"""minicnn: a small, readable deep-learning framework for convolutional networks.

    import minicnn as mc
    import minicnn.functional as F

    model = mc.create_model("lenet5")               # registered by a plugin
    loss = F.cross_entropy(model(images), labels)   # images: (N, 1, 28, 28)
    loss.backward()
"""

__version__ = "0.1.0"

import importlib

from minicnn import data, functional, nn, optim  # noqa: E402
from minicnn.autograd import Function, Tensor, is_grad_enabled, no_grad, set_debug, tensor  # noqa: E402
from minicnn.backend import Device, DeviceError, device, get_array_module, gpu_available, manual_seed  # noqa: E402
from minicnn.creation import (  # noqa: E402
    arange, float32, float64, full, int64, ones, ones_like, rand, randn, uint8, zeros, zeros_like,
)
from minicnn.kernels.settings import get_num_threads, set_num_threads  # noqa: E402

# Names whose modules import pluggy or the plugins themselves: imported on first use, so that
# `import minicnn` stays quick (a plugin's own `import minicnn` then costs nothing either).
_LAZY = {
    "hookimpl": "minicnn.plugin.hookspecs",
    "PluginError": "minicnn.plugin.manager", "create_model": "minicnn.plugin.manager",
    "get_layer": "minicnn.plugin.manager", "list_datasets": "minicnn.plugin.manager",
    "list_layers": "minicnn.plugin.manager", "list_models": "minicnn.plugin.manager",
    "plugin_system": "minicnn.plugin.manager", "reload_plugins": "minicnn.plugin.manager",
    "RegistryError": "minicnn.plugin.registry",
    "SpecError": "minicnn.tools.spec", "build_model": "minicnn.tools.spec",
    "summarize": "minicnn.tools.summary",
    "testing": "minicnn.testing",
    "fit": "minicnn.train.fit", "evaluate": "minicnn.train.fit",
    "save": "minicnn.serialization", "load": "minicnn.serialization",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'minicnn' has no attribute '{name}'")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__ == f"minicnn.{name}" else getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "Device", "DeviceError", "data", "Function", "PluginError", "RegistryError", "SpecError", "Tensor", "build_model",
    "create_model", "device", "get_array_module", "gpu_available", "summarize",
    "functional", "get_layer", "hookimpl", "is_grad_enabled", "list_datasets", "list_layers", "list_models",
    "manual_seed", "nn", "no_grad", "optim", "plugin_system", "reload_plugins", "set_debug", "tensor", "testing",
    "get_num_threads", "set_num_threads", "fit", "evaluate", "save", "load",
    "arange", "float32", "float64", "full", "int64", "ones", "ones_like", "rand", "randn", "uint8", "zeros", "zeros_like",
]
