"""The hooks a minicnn plugin can implement, one per kind of thing it can add: layers, models,
datasets, optimizers and learning-rate schedules.

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


@hookspec
def minicnn_register_optimizers(register: Callable[..., None]) -> None:
    """Add optimizers that `minicnn train --optimizer NAME` and `TrainConfig(optimizer=NAME)` can use.

    Call `register(name, factory, *, default_lr, description="")`:
    - name: lower-case optimizer name, unique across all plugins (sgd and adam are minicnn's own);
    - factory: `factory(params, *, lr, momentum, weight_decay)` returning a `minicnn.optim.Optimizer`
      over the model's parameters; it receives every setting of the run and uses those its rule has
      (Adam has no momentum), so an `Optimizer` subclass taking these keywords is a factory itself;
    - default_lr: the learning rate when the user gives none (`--lr`), a number > 0;
    - description: one line for `minicnn optimizers`.
    The optimizer's `state_dict()` is saved in every checkpoint, so a resumed run continues it exactly.
    """


@hookspec
def minicnn_register_schedules(register: Callable[..., None]) -> None:
    """Add learning-rate schedules that `minicnn train --schedule NAME` can use.

    Call `register(name, factory, *, description="")`:
    - name: lower-case schedule name, unique across all plugins (cosine, step and none are minicnn's own);
    - factory: `factory(optimizer, *, epochs)` returning a `minicnn.optim.LRScheduler`, stepped once
      per epoch and saved in every checkpoint, or None to keep the learning rate constant;
    - description: one line for `minicnn schedules`.
    """
