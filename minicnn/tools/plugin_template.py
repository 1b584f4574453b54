"""`minicnn plugin new NAME`: a plugin package to start from, written as files with NAME substituted.

The package installs with pip and passes `minicnn check` as written, so an author starts from
something that works and changes one thing at a time. For NAME "scaled-tanh" it is:

    minicnn-scaled-tanh/                 the distribution minicnn-scaled-tanh, plugin name scaled_tanh
        pyproject.toml                   the `minicnn` entry point, a dependency on minicnn's distribution
        README.md
        minicnn_scaled_tanh/__init__.py  the hooks: register the layer ScaledTanh and the model scaled_tanh_net
        minicnn_scaled_tanh/scaled_tanh.py      ScaledTanhFunction (forward and a hand-written backward), ScaledTanh
        minicnn_scaled_tanh/scaled_tanh_net.py  ScaledTanhNet, a small CNN built with the layer
        tests/test_scaled_tanh.py        the op against NumPy and finite differences, and the conformance check

The layer's op, y = alpha[c] * tanh(x) with one learned alpha per channel, is the smallest one that
shows all of a custom op: a parameter, a saved array, one gradient per input, a reduction over the
broadcast axes. The author replaces it with theirs.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from minicnn import __version__, distribution
from minicnn.plugin.manager import plugin_system

# Module-level names in the generated files: the op's function, named after the plugin, must not hide one.
_USED_BY_THE_GENERATED_CODE = {"minicnn", "nn", "arguments", "annotations", "np", "pytest", "mc", "gradcheck", "check"}


@dataclass(frozen=True)
class PluginNames:
    """Every name the generated plugin uses, derived from the NAME the author gave."""

    plugin: str        # the entry point's name, and the module's: "scaled_tanh"
    distribution: str  # what pip installs: "minicnn-scaled-tanh"
    package: str       # what Python imports: "minicnn_scaled_tanh"
    layer: str         # the layer class and its registered name: "ScaledTanh"
    model: str         # the registered model name: "scaled_tanh_net"

    @property
    def folder(self) -> str:
        return self.distribution

    @property
    def model_class(self) -> str:
        return f"{self.layer}Net"


def plugin_names(name: str) -> PluginNames:
    """The names for NAME ("scaled-tanh", "Scaled_Tanh" and "minicnn-scaled-tanh" give the same ones).

    Raises ValueError when NAME, lower-cased with its dashes as underscores and without a leading
    "minicnn_", is not an ASCII Python identifier, when it would hide a name the generated code uses,
    or when an installed plugin already has the plugin, layer or model name it would register.
    """
    plugin = re.sub(r"^minicnn(_|$)", "", name.strip().lower().replace("-", "_"))
    if not (plugin.isascii() and plugin.isidentifier()) or keyword.iskeyword(plugin) or plugin.startswith("_") or plugin.endswith("_"):
        raise ValueError(
            f"plugin name {name!r} cannot name a Python package: use letters, digits and dashes or underscores "
            "between words, starting with a letter, such as 'scaled-tanh'"
        )
    names = PluginNames(
        plugin=plugin,
        distribution="minicnn-" + plugin.replace("_", "-"),
        package="minicnn_" + plugin,
        layer="".join(word.capitalize() for word in plugin.split("_") if word),
        model=f"{plugin}_net",
    )
    _refuse_taken(name, names)
    return names


def _refuse_taken(name: str, names: PluginNames) -> None:
    """A name the generated code would shadow, or one an installed plugin already registers (minicnn
    would refuse the new plugin's registration), is refused before anything is written."""
    if names.plugin in _USED_BY_THE_GENERATED_CODE or hasattr(builtins, names.plugin):
        raise ValueError(
            f"plugin name {name!r} is a name the generated code itself uses ({names.plugin!r}): choose another, "
            f"such as '{names.plugin}-layers'"
        )
    system = plugin_system()
    if names.plugin in system.plugins:
        info = system.plugins[names.plugin]
        raise ValueError(f"plugin name {name!r} is taken: the installed distribution {info.distribution} has a "
                         f"plugin named {names.plugin!r} (`minicnn plugins` lists them); choose another name")
    for kind, wanted in (("layers", names.layer), ("models", names.model)):
        if wanted in system.registries[kind]:
            entry = system.registries[kind].get(wanted)
            raise ValueError(
                f"plugin name {name!r} would register the {entry.kind} {wanted!r}, which plugin '{entry.plugin}' "
                f"already provides (`minicnn {kind}` lists them); choose another name"
            )


def minicnn_requirement() -> str:
    """The dependency a plugin declares on minicnn: its distribution (not the unrelated `minicnn` on the
    package index), at least this minor version, e.g. "minicnn-framework>=0.1"."""
    major, minor = __version__.split(".")[:2]
    return f"{distribution.NAME}>={major}.{minor}"


def plugin_files(names: PluginNames) -> dict[str, str]:
    """Relative path -> text of every file of the plugin package."""
    values = {
        "plugin": names.plugin, "distribution": names.distribution, "package": names.package,
        "Layer": names.layer, "model": names.model, "Model": names.model_class,
        "requirement": minicnn_requirement(),
    }
    files = {
        "pyproject.toml": _PYPROJECT, "README.md": _README,
        f"{names.package}/__init__.py": _HOOKS,
        f"{names.package}/{names.plugin}.py": _LAYER,
        f"{names.package}/{names.model}.py": _MODEL,
        f"tests/test_{names.plugin}.py": _TESTS,
    }
    return {path: Template(text).substitute(values) for path, text in files.items()}


def write_plugin(name: str, parent: str | Path = ".") -> tuple[PluginNames, Path, list[str]]:
    """Write the plugin package for NAME into a new folder under `parent`.

    Returns (names, the folder, the relative paths written). Raises ValueError for a NAME that
    `plugin_names` refuses, and FileExistsError when the folder exists and is not empty: nothing is
    written then, so nothing of the author's is ever overwritten.
    """
    names = plugin_names(name)
    folder = Path(parent) / names.folder
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(
            f"'{folder}' already exists and is not an empty folder: nothing was written; remove it, "
            "or choose another NAME or --dir"
        )
    files = plugin_files(names)
    for path, text in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return names, folder, list(files)


_PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A minicnn plugin: the $Layer layer and the $model model"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["$requirement"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The plugin's name ("$plugin") and the module whose @minicnn.hookimpl functions minicnn calls.
[project.entry-points.minicnn]
$plugin = "$package"

[tool.setuptools]
packages = ["$package"]
'''

_README = '''\
# $distribution

A plugin for minicnn. It adds:

- **`$Layer`**, a layer: `y = alpha * tanh(x)` with `alpha` learned per channel, written as a
  `minicnn.Function` with its own forward and backward (`$package/$plugin.py`);
- **`$model`**, a model: two 3x3 convolutions, each followed by `$Layer`, then average pooling and
  one linear layer, for (1, 28, 28) images by default (`$package/$model.py`).

`$package/__init__.py` registers both; `pyproject.toml` declares the entry point through which
minicnn finds them.

## Install and check

```bash
pip install -e .                    # in this folder: edits apply without reinstalling
minicnn plugins                     # "$plugin" is loaded, providing $Layer and $model
minicnn check $Layer                # build, forward, backward, gradcheck, state_dict
minicnn check $model
python -m pytest tests              # the op against NumPy and finite differences, and the same check
minicnn train $model --dataset digits --epochs 1
```

## Make it yours

Write your op in `${Layer}Function.forward` and `.backward`, over raw arrays (NumPy on the CPU,
CuPy on a GPU), and update the test that compares it with NumPy. Keep the gradient check and the
conformance check: they say which gradient is wrong. minicnn's `docs/plugins.md` explains the hooks,
`save_for_backward` and what `backward` returns.
'''

_HOOKS = '''\
"""minicnn plugin '$plugin': the $Layer layer and the $model model.

minicnn finds this module through the `minicnn` entry point declared in pyproject.toml and calls the
hooks below; each registers what the plugin provides under the name that model specs,
`minicnn check`, `mc.get_layer` and `mc.create_model` use.
"""

from __future__ import annotations

import minicnn
from $package.$plugin import $Layer, ${Layer}Function, $plugin
from $package.$model import $Model

__version__ = "0.1.0"
__all__ = ["$Layer", "${Layer}Function", "$Model", "$plugin"]


@minicnn.hookimpl
def minicnn_register_layers(register):
    register("$Layer", $Layer, example={"num_channels": 3}, input_size=(2, 3, 8, 8),
             description="alpha * tanh(x) with alpha learned per channel")


@minicnn.hookimpl
def minicnn_register_models(register):
    register("$model", $Model, input_size=(1, 28, 28),
             description="two 3x3 convolutions with $Layer, average pooling and one linear layer")
'''

_LAYER = '''\
"""$Layer: a custom op written as a minicnn Function with its own backward, wrapped in a layer.

    y = alpha * tanh(x)            one alpha per channel
    dy/dx     = alpha * (1 - tanh(x)^2)
    dy/dalpha = tanh(x)            summed over every axis but the channels'

Replace forward and backward with your op; tests/ check its gradients against finite differences.
"""

from __future__ import annotations

import minicnn
from minicnn import nn
from minicnn.nn import arguments


class ${Layer}Function(minicnn.Function):
    """x: (N, C, *) or (N, C); alpha: (C,) -> y: x's shape. Both over raw arrays (NumPy or CuPy)."""

    def forward(self, x, alpha):
        xp = minicnn.get_array_module(x)
        a = alpha.reshape((1, -1) + (1,) * (x.ndim - 2))  # (1, C, 1, ...): broadcasts over N and space
        t = xp.tanh(x)
        self.save_for_backward(t, a)
        return a * t

    def backward(self, grad):
        t, a = self.saved
        grad_x = grad * a * (1 - t * t) if self.needs_input_grad[0] else None
        grad_alpha = None
        if self.needs_input_grad[1]:
            other_axes = tuple(axis for axis in range(t.ndim) if axis != 1)
            grad_alpha = (grad * t).sum(axis=other_axes)  # (C,): alpha's own shape
        return grad_x, grad_alpha


def $plugin(x: minicnn.Tensor, alpha: minicnn.Tensor) -> minicnn.Tensor:
    """alpha * tanh(x) per channel. x: (N, C, *) or (N, C); alpha: (C,) -> x's shape."""
    if x.ndim < 2 or alpha.ndim != 1 or x.shape[1] != alpha.shape[0]:
        raise ValueError(
            f"$Layer: alpha has shape {alpha.shape} but the input has shape {x.shape}: an input of C channels "
            "(axis 1) needs alpha of shape (C,), as $Layer(num_channels=C) makes it"
        )
    return ${Layer}Function()(x, alpha)


class $Layer(nn.Module):
    """tanh with a learned scale per channel. x: (N, num_channels, *) -> same shape; alpha starts at 1."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.num_channels = arguments.positive_int(self, "num_channels", num_channels)
        self.alpha = nn.Parameter(minicnn.tensor([1.0] * self.num_channels))

    def forward(self, x: minicnn.Tensor) -> minicnn.Tensor:
        return $plugin(x, self.alpha)

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"
'''

_MODEL = '''\
"""$Model: a small CNN built with the plugin's $Layer layer."""

from __future__ import annotations

from minicnn import nn
from $package.$plugin import $Layer


class $Model(nn.Module):
    """Two 3x3 convolutions, each followed by $Layer, then average pooling and one linear layer.

    input (in_channels, H, W), H and W at least 2
      Conv 3x3, width filters, padding 1     -> width@HxW, $Layer
      MaxPool 2x2                            -> width@(H/2)x(W/2)
      Conv 3x3, 2*width filters, padding 1   -> 2*width@(H/2)x(W/2), $Layer
      AdaptiveAvgPool 1x1, Flatten           -> 2*width
      Linear 2*width -> num_classes
    It takes num_classes and in_channels, which minicnn passes from the dataset it trains on.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            $Layer(width),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            $Layer(2 * width),
        )
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
'''

_TESTS = '''\
"""Tests of the minicnn plugin '$plugin': the op against NumPy and against finite differences, and
minicnn's conformance check on the layer and the model. Run them with the plugin installed
(`pip install -e .` in the plugin's folder): the check finds the plugin through its entry point.
"""

import numpy as np
import pytest

import minicnn as mc
from minicnn.testing import gradcheck
from minicnn.tools.conformance import check
from $package import $Layer, ${Layer}Function


def test_the_plugin_is_installed_and_registers_its_layer_and_model():
    info = mc.plugin_system().plugins.get("$plugin")
    assert info is not None, "plugin '$plugin' is not installed: run `pip install -e .` in its folder"
    assert info.status == "loaded" and not info.errors, info.errors
    assert info.provides == {"layers": ["$Layer"], "models": ["$model"]}


def test_the_layer_scales_tanh_per_channel():
    layer = $Layer(num_channels=2)
    layer.alpha.data[...] = [0.5, -2.0]
    x = np.linspace(-3, 3, 2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    y = layer(mc.tensor(x))
    assert y.dtype == np.float32 and y.shape == x.shape
    expected = np.array([0.5, -2.0], dtype=np.float32).reshape(1, 2, 1, 1) * np.tanh(x)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_a_wrong_channel_count_is_refused_naming_both_shapes():
    with pytest.raises(ValueError, match=r"alpha has shape \\(2,\\) but the input has shape \\(1, 3, 4, 4\\)"):
        $Layer(num_channels=2)(mc.tensor(np.zeros((1, 3, 4, 4), dtype=np.float32)))


def test_the_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    x, alpha = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal(3)
    assert gradcheck(lambda x, alpha: ${Layer}Function()(x, alpha), [x, alpha])


@pytest.mark.parametrize("name", ["$Layer", "$model"])
def test_minicnn_check_passes(name):
    report = check(name)
    assert report.passed, [(step.name, step.detail) for step in report.failures()]
'''
