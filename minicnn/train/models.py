"""From a model reference to a model: the one place that knows the three kinds of reference.

A reference is what a user writes where a model is expected (`minicnn train REF`, `minicnn summary
REF`, `minicnn evaluate REF`):

    "lenet5"                    a registered model name (`minicnn models`), built by its plugin's factory
    "examples/net.toml"         a model spec file (`minicnn.tools.spec`), built layer by layer
    "runs/x/best.safetensors"   a trained model: a checkpoint file, or a run folder, which stands for its
                                best checkpoint (`RunFolder.checkpoint_for`); rebuilt from the name or
                                spec it was trained from, with its weights loaded

It lives in the training layer because a checkpoint is the training's format: training builds its
model here, and inference and the tools (above it) resolve trained models here too.
"""

from __future__ import annotations

from pathlib import Path

from minicnn.nn import Module
from minicnn.plugin.manager import create_model, model_entry
from minicnn.tools.spec import SpecError, build_model, is_spec_path, load_spec
from minicnn.train.checkpoint import CheckpointError, first_non_finite, is_checkpoint_file, load_checkpoint
from minicnn.train.run_folder import RunFolder

REFERENCES = ("checkpoint", "spec", "name")


def reference_kind(reference, accept: tuple = REFERENCES) -> str:
    """Which of `accept` (in REFERENCES' order) `reference` is; the last one accepted when no other fits,
    so with one kind accepted every reference is taken as that kind (and its errors say why not).

    A checkpoint is a folder, a path ending in .safetensors or .npz (an earlier minicnn's checkpoint),
    or a file that is either by its first bytes; a spec ends in .toml or is another file; anything
    else is a registered name.
    """
    tests = {"checkpoint": _is_checkpoint, "spec": is_spec_path}
    accept = [kind for kind in REFERENCES if kind in accept]
    if not accept:
        raise ValueError(f"accept must name some of {', '.join(REFERENCES)}")
    return next((kind for kind in accept[:-1] if tests[kind](reference)), accept[-1])


def resolve_model(reference, *, accept: tuple = REFERENCES, defaults: dict | None = None, **options) -> tuple[Module, dict]:
    """The model `reference` names (see the module's docstring), and what describes it.

    accept: the kinds of reference allowed (REFERENCES); `evaluate` accepts only checkpoints.
    options: keyword arguments for a registered model's factory (num_classes=, in_channels=, ...);
    a spec or a checkpoint fixes its own layers and refuses any that is not None.
    defaults: factory arguments that `options` override and that a spec or checkpoint ignores: what
    training knows from its dataset (its class and channel counts), leaving the fit to be checked.

    Returns (model, meta). meta holds "model" (the name or path), "input_size" ((C, H, W) or None)
    and how to build the model again: "model_options" for a name, "spec" (the parsed spec) for a spec;
    for a checkpoint, its whole metadata (classes, normalize, ...), the model in eval mode.
    Raises RegistryError, SpecError or CheckpointError naming the reference and what to do.
    """
    kind = reference_kind(reference, accept)
    given = {key: value for key, value in options.items() if value is not None}
    if kind == "name":
        entry = model_entry(str(reference))
        built = {**(defaults or {}), **options}
        return create_model(str(reference), **built), {"model": str(reference), "model_options": built,
                                                       "input_size": entry.input_size}
    if kind == "spec":
        if given:
            raise SpecError(f"model spec '{reference}' takes no arguments ({', '.join(given)}): edit its layers instead")
        model = build_model(reference)  # from the path, so that its errors name the file
        return model, {"model": str(reference), "spec": load_spec(reference)[0], "input_size": model.input_size}
    path = RunFolder.checkpoint_for(reference)
    if given:
        raise CheckpointError(f"checkpoint {path} holds a trained model and takes no arguments ({', '.join(given)})")
    return _trained(path)


def _trained(path: Path) -> tuple[Module, dict]:
    """(model in eval mode, metadata) of a checkpoint; one whose weights hold a NaN or an infinity is
    refused, since every output it gave would be meaningless."""
    checkpoint = load_checkpoint(path)
    broken = first_non_finite(checkpoint.model)
    if broken is not None:
        raise CheckpointError(f"checkpoint {path}: weight '{broken}' holds NaN or infinite values, so the model's "
                              "outputs would be meaningless; use a checkpoint from before training diverged")
    meta = checkpoint.meta
    if "python_model" in meta:  # a model object trained with mc.fit: only its own code can build it
        raise CheckpointError(f"checkpoint {path} holds a {meta['python_model']} trained from Python with mc.fit, which "
                              "minicnn cannot rebuild by itself: load it in Python, building the model and then "
                              f"model.load_state_dict(minicnn.train.load_checkpoint(\"{path}\").model)")
    model = build_model(meta["spec"]) if "spec" in meta else create_model(meta["model"], **meta.get("model_options", {}))
    model.load_state_dict(checkpoint.model)
    return model.eval(), meta


def _is_checkpoint(reference) -> bool:
    path = Path(reference)
    return path.is_dir() or path.suffix.lower() in (".safetensors", ".npz") or (path.is_file() and is_checkpoint_file(path))
