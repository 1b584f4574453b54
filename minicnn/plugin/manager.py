"""Finding, loading and isolating plugins, and the registries they fill.

Built-in plugins are registered from a list of module names; installed ones are found through the
entry-point group `minicnn` (the built-in architecture families ship that way too). Each plugin is
loaded, validated and called on its own, so one that fails to import, has a wrong hook signature,
a misspelled hook or raises in its hook is recorded as a problem (plugin, distribution, error) and
every other plugin keeps working. Loading happens once, on first use.

Precedence: a plugin name, and a layer, model, dataset, optimizer or schedule name, belongs to the
first plugin that claims it, in an order this module sets (never the order pluggy lists hook
implementations in): first what ships with minicnn (the built-in layers, datasets, optimizers and
schedules, then the entry points of minicnn's own distribution, `minicnn-framework`, by name), then third-party plugins
sorted by plugin name (then distribution name). So a third-party plugin can never replace `Conv2d`,
`lenet5`, `mnist` or `sgd`, and between two
third-party plugins the one whose name sorts first keeps a contested name, whatever was installed
first. The one refused records the problem, naming the plugin that keeps the name.

Any BaseException from a plugin's import or hook counts as that plugin failing: a `sys.exit()`,
a KeyboardInterrupt (Ctrl-C while a slow plugin imports skips that plugin) or a custom
BaseException is recorded like an ImportError, instead of ending the program that loads plugins.

Environment:
- MINICNN_LOAD_PLUGINS: unset loads every installed plugin; empty loads none; "a,b" only these.
- MINICNN_DISABLE_PLUGINS: "a,b" skips these.
  A name in either that no installed plugin has is recorded as a problem, with the closest names.
- MINICNN_STRICT_PLUGINS=1: any plugin problem raises PluginError instead of being recorded.
- MINICNN_PLUGIN_SLOW_SECONDS (default 2): a plugin still importing after this long gets a
  SlowPluginWarning naming it and how to skip it (the CLI shows it as one yellow line).
The built-in layers, datasets and optimizers (with their schedules) are part of the core and always load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import numbers
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from functools import partial

import pluggy

from minicnn import __version__, distribution
from minicnn.nn import Module
from minicnn.optim import LRScheduler, Optimizer
from minicnn.plugin import hookspecs
from minicnn.plugin.registry import Entry, Registry, RegistryError, did_you_mean

ENTRY_POINT_GROUP = "minicnn"
SHIPPED_DISTRIBUTION = distribution.NAME  # its entry points keep their names against any third-party plugin
BUILTIN_PLUGINS = {  # plugin name -> module
    "layers": "minicnn.plugin.builtin_layers", "datasets": "minicnn.plugin.builtin_datasets",
    "optimizers": "minicnn.plugin.builtin_optimizers",
}
SLOW_SECONDS = 2.0
KINDS = ("layers", "models", "datasets", "optimizers", "schedules")
_SINGULAR = {"layers": "layer", "models": "model", "datasets": "dataset", "optimizers": "optimizer",
             "schedules": "schedule"}


class PluginError(RuntimeError):
    """A plugin could not be loaded or used (raised only with MINICNN_STRICT_PLUGINS=1)."""


class SlowPluginWarning(UserWarning):
    """A plugin is still importing after MINICNN_PLUGIN_SLOW_SECONDS: says which, and how to skip it.

    Issued from a timer thread while the import goes on, so a hanging plugin is named before it ends.
    """


@dataclass
class PluginInfo:
    """What `minicnn plugins` shows about one plugin."""

    name: str
    distribution: str
    version: str
    status: str = "loaded"  # loaded, disabled, failed, or unknown (named in an env var, not installed)
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
        self.slow_seconds = _slow_seconds(environ.get("MINICNN_PLUGIN_SLOW_SECONDS"))
        self.manager = pluggy.PluginManager("minicnn")
        self.manager.add_hookspecs(hookspecs)
        self.registries = {kind: Registry(_SINGULAR[kind]) for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}  # in precedence order: hooks are called in this order
        for plugin_name, module_name in BUILTIN_PLUGINS.items():
            info = PluginInfo(plugin_name, SHIPPED_DISTRIBUTION, __version__)
            self._register(info, lambda name=module_name: importlib.import_module(name))
        entry_points = [(PluginInfo(ep.name, *_distribution(ep)), ep)
                        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
        entry_points.sort(key=lambda found: _precedence(found[0]))
        for info, entry_point in entry_points:
            if not self._wanted(info.name):
                info.status = "disabled"
                self.plugins.setdefault(info.name, info)
                continue
            self._register(info, entry_point.load)
        for kind in KINDS:
            self._call_hook(kind)
        self._check_names(set(BUILTIN_PLUGINS) | {info.name for info, _ in entry_points})

    def _wanted(self, name: str) -> bool:
        return name not in self.disabled and (self.only is None or name in self.only)

    def _check_names(self, installed: set) -> None:
        """Record each name in MINICNN_LOAD_PLUGINS / MINICNN_DISABLE_PLUGINS that no plugin has (a typo
        would otherwise load or skip nothing, silently), with the closest installed names (or all of them)."""
        for variable, names in (("MINICNN_LOAD_PLUGINS", self.only or set()), ("MINICNN_DISABLE_PLUGINS", self.disabled)):
            for name in sorted(names - installed):
                info = self.plugins.setdefault(name, PluginInfo(name, "not installed", "", status="unknown"))
                hint = did_you_mean(name, installed) or f" (installed: {', '.join(sorted(installed))})"
                self._fail(info, f"{variable} names '{name}', but no installed plugin has that name{hint}")
        for name in sorted(set(BUILTIN_PLUGINS) & self.disabled):
            self._fail(self.plugins[name], f"MINICNN_DISABLE_PLUGINS names '{name}', but the built-in {name} are part "
                                           "of minicnn's core and always load")

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.errors.append(message)
        if self.strict:
            raise PluginError(f"plugin '{info.name}' (distribution {info.distribution}): {message}")

    def _register(self, info: PluginInfo, load) -> None:
        """Import one plugin and register it with pluggy, validating its hooks; record failures."""
        if info.name in self.plugins and self.plugins[info.name].status != "disabled":
            holder = self.plugins[info.name].distribution
            self._fail(info, f"refused: another distribution ({holder}) already uses the plugin name '{info.name}' and keeps it")
            info.status = "failed"
            self.plugins[f"{info.name} ({info.distribution})"] = info
            return
        self.plugins[info.name] = info
        try:
            module = self._import(info, load)
        except BaseException as error:  # sys.exit() and Ctrl-C in a plugin's import fail that plugin only
            info.status = "failed"
            self._fail(info, f"import failed: {_describe(error)}")
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
            self._fail(info, f"{error} (hooks are {', '.join(f'minicnn_register_{kind}' for kind in KINDS)})")
            return
        info.hooks = sorted(caller.name for caller in self.manager.get_hookcallers(module) or [])
        if not info.hooks:
            info.status = "failed"
            self._fail(info, "defines no hook: decorate its functions with @minicnn.hookimpl")

    def _import(self, info: PluginInfo, load):
        """`load()`, warning (SlowPluginWarning) if it is still running after `slow_seconds`."""
        timer = threading.Timer(self.slow_seconds, _warn_slow, (info,))
        timer.daemon = True
        timer.start()
        try:
            return load()
        finally:
            timer.cancel()

    def _call_hook(self, kind: str) -> None:
        """Call every plugin's hook for `kind` on its own, in precedence order (`self.plugins`' order,
        not pluggy's), so the first plugin to register a name keeps it; keep a hook's registrations
        only if it succeeds."""
        caller = getattr(self.manager.hook, f"minicnn_register_{kind}")
        impls = {impl.plugin_name: impl for impl in caller.get_hookimpls()}
        for key, info in self.plugins.items():
            impl = impls.get(key)
            if impl is None:
                continue
            collected = []
            register = partial(_collect, collected, kind, info.name)
            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except BaseException as error:
                info.status = "failed"
                self._fail(info, f"minicnn_register_{kind} raised {_describe(error)}")
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

    def provided(self, kind: str) -> list[str]:
        """The registered names of `kind` in precedence order: what ships with minicnn first, in the
        order it registers them (sgd before adam), then each third-party plugin's."""
        return [name for info in self.plugins.values() for name in info.provides.get(kind, [])]


def _distribution(entry_point) -> tuple[str, str]:
    """(name, version) of the distribution that declares an entry point."""
    dist = entry_point.dist
    return (dist.metadata["Name"], dist.version) if dist is not None else ("unknown", "unknown")


def _precedence(info: PluginInfo) -> tuple:
    """Sort key of an installed plugin: minicnn's own entry points first, then by plugin and distribution
    name, so which plugin keeps a contested name never depends on install order or on pluggy."""
    shipped = re.sub(r"[-_.]+", "-", info.distribution).lower() == SHIPPED_DISTRIBUTION  # as pip compares names
    return (not shipped, info.name, info.distribution)


def _describe(error: BaseException) -> str:
    """"ValueError: bad", or just "KeyboardInterrupt" for an exception without a message."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _slow_seconds(text: str | None) -> float:
    """MINICNN_PLUGIN_SLOW_SECONDS as a number of seconds (SLOW_SECONDS when unset)."""
    if text is None or not text.strip():
        return SLOW_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"MINICNN_PLUGIN_SLOW_SECONDS must be a positive number of seconds (e.g. 2), got '{text}'")
    return seconds


def _warn_slow(info: PluginInfo) -> None:
    """Name a plugin whose import is taking long, and the two ways to skip it."""
    warnings.warn(
        f"waiting for plugin '{info.name}' (distribution {info.distribution}) to import; Ctrl-C skips it now, "
        f"MINICNN_DISABLE_PLUGINS={info.name} skips it from now on", SlowPluginWarning,
    )


def _collect(collected: list, kind: str, plugin: str, name: str, target, *, description: str = "",
             input_size=None, example: dict | None = None, default_lr=None) -> None:
    """The `register` callback handed to a plugin's hook."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register() needs a non-empty name string, got {name!r}")
    if not callable(target):
        raise TypeError(f"register('{name}', ...) needs a class or factory function, got {target!r}")
    if input_size is None:
        input_size = {"models": (1, 28, 28), "layers": (2, 3, 8, 8)}.get(kind)
    if kind == "optimizers":
        usable = isinstance(default_lr, numbers.Real) and not isinstance(default_lr, bool)
        if not (usable and math.isfinite(default_lr) and default_lr > 0):
            raise TypeError(f"register('{name}', ...) needs default_lr, the learning rate used when none is given "
                            f"(a finite number > 0), got {default_lr!r}")
        default_lr = float(default_lr)
    collected.append(Entry(_SINGULAR[kind], name, target, plugin, description,
                           tuple(input_size) if input_size is not None else None, dict(example or {}),
                           default_lr if kind == "optimizers" else None))


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


def list_optimizers(pattern: str = "*") -> list[str]:
    return plugin_system().registries["optimizers"].names(pattern)


def list_schedules(pattern: str = "*") -> list[str]:
    return plugin_system().registries["schedules"].names(pattern)


def get_layer(name: str):
    """The layer class registered under `name` (an unknown name suggests close matches)."""
    return plugin_system().registries["layers"].get(name).target


def model_entry(name: str) -> Entry:
    return plugin_system().registries["models"].get(name)


def dataset_entry(name: str) -> Entry:
    return plugin_system().registries["datasets"].get(name)


def optimizer_entry(name: str) -> Entry:
    return plugin_system().registries["optimizers"].get(name)


def schedule_entry(name: str) -> Entry:
    return plugin_system().registries["schedules"].get(name)


def create_model(name: str, num_classes: int | None = None, in_channels: int | None = None, **kwargs):
    """Build the model registered as `name`; num_classes and in_channels are passed when given.

    The model's `registered_as` says how it was built ({"model": name, "model_options": {...}}), so
    that `mc.fit` can record it and the CLI rebuild the model from a checkpoint.
    """
    entry = model_entry(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    try:
        model = entry.target(**kwargs)
    except TypeError as error:
        raise TypeError(f"model '{name}' (plugin '{entry.plugin}') could not be built with {kwargs}: {error}") from error
    if isinstance(model, Module):  # anything else is the conformance check's to refuse
        model.registered_as = {"model": name, "model_options": dict(kwargs)}
    return model


def create_optimizer(name: str, params, *, lr: float | None = None, momentum: float, weight_decay: float) -> Optimizer:
    """Build the optimizer registered as `name` over `params`; lr None takes its registered default_lr."""
    entry = optimizer_entry(name)
    settings = {"lr": entry.default_lr if lr is None else lr, "momentum": momentum, "weight_decay": weight_decay}
    try:
        optimizer = entry.target(params, **settings)
    except TypeError as error:
        raise TypeError(f"optimizer '{name}' (plugin '{entry.plugin}') could not be built with {settings}: {error}") from error
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer '{name}' (plugin '{entry.plugin}') gave a {type(optimizer).__name__}, not a "
                        "minicnn.optim.Optimizer: its factory must return one")
    return optimizer


def create_schedule(name: str, optimizer: Optimizer, *, epochs: int) -> LRScheduler | None:
    """The learning-rate schedule registered as `name`, driving `optimizer` over `epochs` epochs (None:
    the learning rate stays constant)."""
    entry = schedule_entry(name)
    try:
        scheduler = entry.target(optimizer, epochs=epochs)
    except TypeError as error:
        raise TypeError(f"schedule '{name}' (plugin '{entry.plugin}') could not be built with epochs={epochs}: {error}") from error
    if scheduler is not None and not isinstance(scheduler, LRScheduler):
        raise TypeError(f"schedule '{name}' (plugin '{entry.plugin}') gave a {type(scheduler).__name__}, not a "
                        "minicnn.optim.LRScheduler or None: its factory must return one")
    return scheduler
