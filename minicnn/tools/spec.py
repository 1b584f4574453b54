"""Model specs: a network written as a TOML list of registered layers, built without any Python.

A spec lets anyone use a layer from a third-party plugin (or the built-in ones) from the command
line, e.g. `minicnn summary net.toml`, without writing a model plugin. Each `[[layers]]` table names
a layer registered in the layer registry (`minicnn layers` lists them) and gives its keyword
arguments; the layers run one after the other, as in `nn.Sequential`.

    name = "lenet5"                  # optional
    description = "LeNet-5 (1998)"   # optional
    input_size = [1, 28, 28]         # optional: (C, H, W) of one sample, for `minicnn summary`

    [[layers]]
    type = "Conv2d"                  # a registered layer name (case matters)
    name = "c1"                      # optional child name; otherwise "0", "1", ...
    in_channels = 1
    out_channels = 6
    kernel_size = 5
    padding = [2, 2]                 # TOML arrays arrive as tuples: (2, 2)

    [[layers]]
    type = "ReLU"

Every mistake raises `SpecError`, naming the file, the layer (position and type) and what to do.
"""

from __future__ import annotations

import inspect
import numbers
import os
import tomllib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from minicnn.nn import Module, Sequential
from minicnn.plugin.manager import get_layer
from minicnn.plugin.registry import RegistryError, did_you_mean

TOP_LEVEL_KEYS = ("name", "description", "input_size", "layers")


class SpecError(ValueError):
    """A model spec that cannot be read or built; the message says where and how to fix it."""


def is_spec_path(value: str | os.PathLike) -> bool:
    """Whether `value` names a spec file rather than a registered model: it ends in .toml or is a file."""
    return str(value).lower().endswith(".toml") or Path(value).is_file()


def load_spec(spec: str | os.PathLike | Mapping) -> tuple[dict, str]:
    """The parsed spec and how errors should name it ("model spec 'net.toml'").

    spec: a path to a TOML file, or a dict already parsed (returned as is).
    """
    if isinstance(spec, Mapping):
        return dict(spec), "model spec"
    path = Path(spec)
    where = f"model spec '{path}'"
    try:
        with path.open("rb") as file:
            return tomllib.load(file), where
    except FileNotFoundError:
        raise SpecError(f"{where} not found: give the path of a TOML file (examples/lenet5.toml is one)") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{where} is not valid TOML: {error}; fix the syntax there") from None
    except UnicodeDecodeError as error:
        raise SpecError(f"{where} is not UTF-8 text ({error}); save it as UTF-8") from None
    except OSError as error:
        raise SpecError(f"{where} could not be read: {error}") from None


def build_model(spec: str | os.PathLike | Mapping) -> Sequential:
    """Build the `nn.Sequential` a spec describes (see the module docstring for the format).

    spec: a path to a TOML file, or the same content as a dict. The returned model carries the
    spec's `name`, `description` and `input_size` ((C, H, W) or None) as attributes, so
    `summarize(model, model.input_size)` needs nothing else.
    """
    data, where = load_spec(spec)
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise SpecError(
            f"{where}: unknown top-level key(s) {', '.join(map(repr, unknown))}; the keys are "
            f"{', '.join(TOP_LEVEL_KEYS)}, and each layer is a [[layers]] table"
        )
    input_size = _input_size(data, where)
    model_name, description = _text(data, "name", where), _text(data, "description", where)
    layers = data.get("layers", [])
    if not isinstance(layers, (list, tuple)):
        raise SpecError(f"{where}: 'layers' must be a list of [[layers]] tables, got {type(layers).__name__}")
    if not layers:
        raise SpecError(f"{where} has no layers: add [[layers]] tables, each with type = \"<layer name>\" and its arguments")
    children = OrderedDict()
    for index, table in enumerate(layers):
        name, module = _build_layer(table, index, where)
        if name in children:
            raise SpecError(
                f"{where}, layer {index} ({table['type']}): the name {name!r} is already used by an earlier layer; "
                "names must be unique"
            )
        children[name] = module
    model = Sequential(children)
    model.name, model.description = model_name, description
    model.input_size = input_size
    return model


def _text(data: dict, key: str, where: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise SpecError(f"{where}: {key} must be text in quotes, such as {key} = \"...\", got {value!r}")
    return value


def _input_size(data: dict, where: str) -> tuple[int, int, int] | None:
    value = data.get("input_size")
    if value is None:
        return None
    ok = (
        isinstance(value, (list, tuple)) and len(value) == 3
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)
    )
    if not ok:
        raise SpecError(f"{where}: input_size must be [C, H, W], three positive integers such as [1, 28, 28], got {value!r}")
    return tuple(int(v) for v in value)


def _build_layer(table, index: int, where: str) -> tuple[str, Module]:
    """One [[layers]] table -> (child name, constructed layer)."""
    if not isinstance(table, Mapping):
        raise SpecError(f"{where}, layer {index}: expected a [[layers]] table with a type, got {table!r}")
    kind = table.get("type")
    if kind is None:
        raise SpecError(
            f"{where}, layer {index}: missing type; add type = \"<layer name>\" naming a registered layer "
            "(`minicnn layers` lists them)"
        )
    if not isinstance(kind, str) or not kind:
        raise SpecError(
            f"{where}, layer {index}: type must be a registered layer's name in quotes, such as type = \"Conv2d\", "
            f"got {kind!r} (`minicnn layers` lists them)"
        )
    here = f"{where}, layer {index} ({kind})"
    name = table.get("name", str(index))
    if not isinstance(name, str) or not name or "." in name:
        raise SpecError(f"{here}: name must be a non-empty string without dots, got {name!r}")
    try:
        layer_class = get_layer(kind)
    except RegistryError as error:
        raise SpecError(f"{here}: {error}; for a plugin's layer, `minicnn plugins` shows whether the plugin loaded") from None
    arguments = {key: _as_tuples(value) for key, value in table.items() if key not in ("type", "name")}
    takes = f"{kind} takes {_signature(layer_class)}"
    problem = _key_problem(layer_class, arguments)
    if problem:
        raise SpecError(f"{here}: {problem}{'' if problem.endswith('?') else ';'} {takes}")
    try:
        module = layer_class(**arguments)
    except (TypeError, ValueError) as error:
        raise SpecError(f"{here}: {_reason(error, layer_class)}; {takes}") from None
    return name, module


def _key_problem(layer_class, arguments: dict) -> str:
    """The keys that do not fit the constructor: all the unknown ones (a typo gets a suggestion), else
    all the missing required ones; "" when the keys fit or the signature cannot be read. Python's own
    message names only the first, and in its terms ("__init__() got an unexpected keyword argument")."""
    try:
        parameters = inspect.signature(layer_class).parameters.values()
    except (TypeError, ValueError):
        return ""
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    accepted = [p.name for p in named]
    unknown = [key for key in arguments if key not in accepted]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        hint = did_you_mean(unknown[0], accepted) if len(unknown) == 1 else ""
        return f"unknown argument{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}{hint}"
    missing = [p.name for p in named if p.default is p.empty and p.name not in arguments]
    if missing:
        return f"missing argument{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}"
    return ""


def _reason(error: Exception, layer_class) -> str:
    """The layer's message without its leading "Conv2d: ", which "layer 0 (Conv2d)" already says."""
    text, prefix = str(error), f"{layer_class.__name__}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _as_tuples(value):
    """TOML arrays (lists) as tuples, nested ones too: layers take pairs such as kernel_size as tuples."""
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    return value


def _signature(layer_class) -> str:
    """The constructor's arguments with their defaults, e.g. "(in_features, out_features, bias=True)"."""
    try:
        parameters = inspect.signature(layer_class).parameters.values()
    except (TypeError, ValueError):
        return "the arguments in its documentation"
    return "(" + ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in parameters) + ")"

