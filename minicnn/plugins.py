"""Finding, loading and isolating plugins, and the registries they fill.

Built-in plugins are registered from a list of module names; installed ones are found through the
entry-point group `minicnn` (the built-in architecture families ship that way too). Each plugin is
loaded, validated and called on its own, so one that fails to import, has a wrong hook signature,
a misspelled hook or raises in its hook is recorded as a problem (plugin, distribution, error) and
every other plugin keeps working. Loading happens once, on first use.

Environment:
- MINICNN_LOAD_PLUGINS: unset loads every installed plugin; empty loads none; "a,b" only these.
- MINICNN_DISABLE_PLUGINS: "a,b" skips these.
- MINICNN_STRICT_PLUGINS=1: any plugin problem raises PluginError instead of being recorded.
The built-in layers and datasets are part of the core and always load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from functools import partial

import pluggy

from minicnn import __version__, hookspecs
from minicnn.registry import Entry, Registry, RegistryError

ENTRY_POINT_GROUP = "minicnn"
BUILTIN_PLUGINS = {"layers": "minicnn.builtin_layers", "datasets": "minicnn.builtin_datasets"}  # name -> module
KINDS = ("layers", "models", "datasets")
_SINGULAR = {"layers": "layer", "models": "model", "datasets": "dataset"}


class PluginError(RuntimeError):
    """A plugin could not be loaded or used (raised only with MINICNN_STRICT_PLUGINS=1)."""


@dataclass
class PluginInfo:
    """What `minicnn plugins` shows about one plugin."""

    name: str
    distribution: str
    version: str
    status: str = "loaded"  # loaded, disabled or failed
    hooks: list = field(default_factory=list)
    provides: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "status": self.status, "hooks": self.hooks, "provides": self.provides, "errors": self.errors,
        }


class PluginSystem:
    """The pluggy manager plus one registry per kind, loaded from the environment once."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.strict = environ.get("MINICNN_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")
        wanted = environ.get("MINICNN_LOAD_PLUGINS")
        self.only = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        self.disabled = {n.strip() for n in environ.get("MINICNN_DISABLE_PLUGINS", "").split(",") if n.strip()}
        self.manager = pluggy.PluginManager("minicnn")
        self.manager.add_hookspecs(hookspecs)
        self.registries = {kind: Registry(_SINGULAR[kind]) for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        for plugin_name, module_name in BUILTIN_PLUGINS.items():
            info = PluginInfo(plugin_name, "minicnn", __version__)
            self._register(info, lambda name=module_name: importlib.import_module(name))
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            dist = entry_point.dist
            info = PluginInfo(
                entry_point.name,
                dist.metadata["Name"] if dist is not None else "unknown",
                dist.version if dist is not None else "unknown",
            )
            if not self._wanted(entry_point.name):
                info.status = "disabled"
                self.plugins.setdefault(info.name, info)
                continue
            self._register(info, entry_point.load)
        for kind in KINDS:
            self._call_hook(kind)

    def _wanted(self, name: str) -> bool:
        return name not in self.disabled and (self.only is None or name in self.only)

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.errors.append(message)
        if self.strict:
            raise PluginError(f"plugin '{info.name}' (distribution {info.distribution}): {message}")

    def _register(self, info: PluginInfo, load) -> None:
        """Import one plugin and register it with pluggy, validating its hooks; record failures."""
        if info.name in self.plugins and self.plugins[info.name].status != "disabled":
            self._fail(info, f"another distribution ({self.plugins[info.name].distribution}) already uses the plugin name '{info.name}'")
            info.status = "failed"
            self.plugins[f"{info.name} ({info.distribution})"] = info
            return
        self.plugins[info.name] = info
        try:
            module = load()
        except Exception as error:
            info.status = "failed"
            self._fail(info, f"import failed: {type(error).__name__}: {error}")
            return
        try:
            self.manager.register(module, name=info.name)
        except Exception as error:  # pluggy's PluginValidationError for a wrong hook signature
            info.status = "failed"
            self._fail(info, f"invalid hook: {error}")
            return
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            self.manager.unregister(name=info.name)
            info.status = "failed"
            self._fail(info, f"{error} (hooks are minicnn_register_layers, minicnn_register_models, minicnn_register_datasets)")
            return
        info.hooks = sorted(caller.name for caller in self.manager.get_hookcallers(module) or [])
        if not info.hooks:
            info.status = "failed"
            self._fail(info, "defines no hook: decorate its functions with @minicnn.hookimpl")

    def _call_hook(self, kind: str) -> None:
        """Call every plugin's hook for `kind` on its own; keep its registrations only if it succeeds."""
        caller = getattr(self.manager.hook, f"minicnn_register_{kind}")
        for impl in reversed(caller.get_hookimpls()):  # pluggy lists them last-registered first
            info = self.plugins[impl.plugin_name]
            collected = []
            register = partial(_collect, collected, kind, info.name)
            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except Exception as error:
                info.status = "failed"
                self._fail(info, f"minicnn_register_{kind} raised {type(error).__name__}: {error}")
                continue
            for entry in collected:
                try:
                    self.registries[kind].add(entry)
                except RegistryError as error:
                    self._fail(info, str(error))
                else:
                    info.provides.setdefault(kind, []).append(entry.name)

    def problems(self) -> list[PluginInfo]:
        return [info for info in self.plugins.values() if info.errors]


def _collect(collected: list, kind: str, plugin: str, name: str, target, *, description: str = "",
             input_size=None, example: dict | None = None) -> None:
    """The `register` callback handed to a plugin's hook."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register() needs a non-empty name string, got {name!r}")
    if not callable(target):
        raise TypeError(f"register('{name}', ...) needs a class or factory function, got {target!r}")
    if input_size is None:
        input_size = {"models": (1, 28, 28), "layers": (2, 3, 8, 8)}.get(kind)
    collected.append(Entry(_SINGULAR[kind], name, target, plugin, description,
                           tuple(input_size) if input_size is not None else None, dict(example or {})))


_system: PluginSystem | None = None


def plugin_system() -> PluginSystem:
    """The loaded plugins (loading them on first use)."""
    global _system
    if _system is None:
        _system = PluginSystem()
    return _system


def reload_plugins() -> PluginSystem:
    """Forget what was loaded and load again (after installing a plugin, or changing the env vars)."""
    global _system
    _system = None
    return plugin_system()


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell pattern, e.g. "resnet*"."""
    return plugin_system().registries["models"].names(pattern)


def list_layers(pattern: str = "*") -> list[str]:
    return plugin_system().registries["layers"].names(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    return plugin_system().registries["datasets"].names(pattern)


def get_layer(name: str):
    """The layer class registered under `name` (an unknown name suggests close matches)."""
    return plugin_system().registries["layers"].get(name).target


def model_entry(name: str) -> Entry:
    return plugin_system().registries["models"].get(name)


def dataset_entry(name: str) -> Entry:
    return plugin_system().registries["datasets"].get(name)


def create_model(name: str, num_classes: int | None = None, in_channels: int | None = None, **kwargs):
    """Build the model registered as `name`; num_classes and in_channels are passed when given."""
    entry = model_entry(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    try:
        return entry.target(**kwargs)
    except TypeError as error:
        raise TypeError(f"model '{name}' (plugin '{entry.plugin}') could not be built with {kwargs}: {error}") from error
