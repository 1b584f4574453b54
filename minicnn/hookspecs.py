"""The hooks a minicnn plugin can implement, one per kind of thing it can add.

A plugin is a module with functions decorated by `@minicnn.hookimpl`, named after a spec below.
Each hook receives a `register` callback and calls it once per thing it provides:

    import minicnn

    @minicnn.hookimpl
    def minicnn_register_models(register):
        register("tinynet", TinyNet, input_size=(1, 28, 28), description="two convolutions")

Installed plugins are found through the entry-point group `minicnn` (see docs/plugins.md).
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("minicnn")
hookimpl = pluggy.HookimplMarker("minicnn")


@hookspec
def minicnn_register_layers(register: Callable[..., None]) -> None:
    """Add layer classes that model specs and `minicnn check` can use by name.

    Call `register(name, layer_class, *, example=None, input_size=None, description="")`:
    - name: how TOML model specs refer to the layer (e.g. "Conv2d");
    - layer_class: a `minicnn.nn.Module` subclass;
    - example: keyword arguments that build a small instance, for `minicnn check` and docs;
    - input_size: an input shape (N, C, H, W) that instance accepts (default (2, 3, 8, 8));
    - description: one line for `minicnn layers`.
    """


@hookspec
def minicnn_register_models(register: Callable[..., None]) -> None:
    """Add model architectures that `mc.create_model(name)` and `minicnn train NAME` can build.

    Call `register(name, factory, *, input_size=(1, 28, 28), description="")`:
    - name: lower-case model name (e.g. "lenet5"), unique across all plugins;
    - factory: a callable returning a `minicnn.nn.Module`; it receives `num_classes` and
      `in_channels` when the user gives them, plus any other keyword arguments;
    - input_size: the (C, H, W) input the default model expects (for `summary` and `check`);
    - description: one line for `minicnn models`.
    """


@hookspec
def minicnn_register_datasets(register: Callable[..., None]) -> None:
    """Add datasets that training can load by name (e.g. `--dataset mnist`).

    Call `register(name, factory, *, description="")`:
    - name: lower-case dataset name, unique across all plugins;
    - factory: a callable `factory(split="train", **options)` returning a `minicnn.data.Dataset`;
    - description: one line for `minicnn datasets`.
    """
