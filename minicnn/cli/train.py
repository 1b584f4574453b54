"""`minicnn train`: the main job, with progress bars and a short summary, or one JSON object.

The options take their defaults from TrainConfig's fields (`minicnn.train.config.default`), so the
CLI and Python runs share one set of defaults. `--resume RUN` continues a run with the settings it
recorded: `--epochs N` extends it to N epochs, and any other training option that differs from the
run's own is refused, naming the run's value. Ctrl-C stops a run (exit code 130) with its last
finished epoch saved, and prints the command that continues it.

Under `--json`, everything but the final JSON object goes to stderr, so scripts read stdout whole.
Paths are printed unwrapped (`soft_wrap`), so a run folder stays whole on its line when piped.

`--distributed` makes this process one rank of a job an MPI launcher started (mpiexec, srun): every
rank trains, rank 0 alone prints. An error every rank raised together (minicnn.distributed.agree)
is printed once, by rank 0, and every rank exits with its code; one raised on a single rank is
printed by that rank, naming it, and ends the job (abort_on_error). `--nproc N` starts such a job
on this machine and waits for it (minicnn.cli.train_distributed, minicnn.distributed.launch).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape

from minicnn.cli import model_args, train_distributed
from minicnn.cli.app import app, console, errors, warn_about_plugin_problems
from minicnn.cli.progress import DownloadBar
from minicnn.distributed import launch
from minicnn.train import RunFolder, TrainConfig, resume, train as run_training
from minicnn.train.config import default

OPTION_OF = {"model_options": "model_arg"}  # the parameter that sets a TrainConfig field, where the names differ


def _notify(message: str) -> None:
    errors.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _given(context: typer.Context) -> set[str]:
    """The parameters the user typed (or set through the environment), as opposed to defaults. (By the
    source's name: typer carries its own copy of click, whose enum is not click's.)"""
    typed = ("COMMANDLINE", "ENVIRONMENT")
    return {name for name in context.params if getattr(context.get_parameter_source(name), "name", None) in typed}


def _absolute(folder: str | None) -> str | None:
    """A data folder as the run records it: absolute, so `evaluate` and `--resume` find it from anywhere."""
    return str(Path(folder).expanduser().resolve()) if folder else None


def _spelled(name: str, value) -> str:
    """A setting as it is typed: --batch-size 64, --no-augment, --model-arg width=32, no --lr."""
    if name == "model":
        return f"model {value}"
    if name == "model_options":
        return " ".join(f"--model-arg {key}={json.dumps(item)}" for key, item in (value or {}).items()) or "no --model-arg"
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    return f"no {flag}" if value is None else f"{flag} {value}"


def _same(name: str, given, recorded) -> bool:
    if name == "data_dir" and given is not None and recorded is not None:
        return Path(given).resolve() == Path(recorded).expanduser().resolve()
    return given == recorded


def _refuse_changes(run: str, given: dict, out: str | None) -> None:
    """Refuse options given with --resume that differ from the settings `run` recorded, naming each
    and the run's value: a resumed run continues as it was started (only --epochs extends it)."""
    if out is not None and Path(out).resolve() != Path(run).resolve():
        raise ValueError(f"--out {out} differs from --resume {run}: a resumed run stays in its own folder; leave --out out")
    if not given:
        return
    settings = RunFolder(run).read_settings()
    changed = [f"{_spelled(name, value)} (the run has {_spelled(name, settings.get(name))})"
               for name, value in given.items() if not _same(name, value, settings.get(name))]
    if changed:
        raise ValueError(f"{run} keeps the settings it was started with, so --resume cannot change them: "
                         f"{'; '.join(changed)}. Leave them out (--epochs N extends the run), or start a new run "
                         "with another --out")


def _interrupted(out, resuming: bool, bars, epochs: int | None) -> None:
    """What Ctrl-C leaves: the epoch the run keeps and the command that continues it."""
    if out is None or not (resuming or bars.started):
        errors.print("stopped (Ctrl-C) before training began: nothing was saved", highlight=False)
        return
    if bars.finished is not None:
        kept = f"the run keeps epoch {bars.finished}, its last finished one"
    elif resuming:
        kept = "no epoch finished since the resume; the run keeps its last checkpoint"
    else:
        kept = "no epoch had finished, so the run starts again from epoch 1"
    command = launch.resume_command(str(out), launch.nproc_of_launcher(), epochs)
    errors.print(f"stopped (Ctrl-C): {escape(kept)}. Continue it with:\n  {escape(command)}", highlight=False,
                 soft_wrap=True)


def _summary(result, seconds: float) -> dict:
    """The run as the JSON object of --json: its folder, dataset, epochs done, last and best test accuracy."""
    metrics = RunFolder(result.out_dir).read_metrics()
    last = metrics[-1] if metrics else None
    return {"run_folder": str(result.out_dir), "dataset": result.dataset, "epochs": last["epoch"] if last else 0,
            "test_accuracy": last["test_accuracy"] if last else None, "best_accuracy": result.best_accuracy,
            "seconds": round(seconds, 3)}


def _finish(result, seconds: float) -> None:
    """The summary lines; the best accuracy is the whole run's, epochs before a --resume included."""
    last = result.history[-1] if result.history else None
    best = f" (best {result.best_accuracy:.2%})" if result.best_accuracy is not None else ""
    summary = f": test accuracy {last['test_accuracy']:.2%}{best}" if last else f": nothing left to train{best}"
    console.print(f"[bold]done[/] in {seconds:.0f}s on {escape(result.dataset)}{summary}", highlight=False)
    folder = RunFolder(result.out_dir)
    console.print(f"run saved in {escape(str(folder.path))}  (checkpoints {folder.last.name}, {folder.best.name}; "
                  f"{folder.metrics_file.name})", highlight=False, soft_wrap=True)


@app.command()
def train(
    context: typer.Context,
    model: str = typer.Argument(default("model"), help="A registered model (see `minicnn models`) or a .toml model spec."),
    dataset: str = typer.Option(default("dataset"), help="mnist, fashion-mnist, cifar10, digits... (default: mnist, or digits offline)."),
    data_dir: str = typer.Option(default("data_dir"), "--data-dir", help="Folder holding the dataset files (recorded for evaluate and --resume)."),
    epochs: int = typer.Option(default("epochs"), min=1, help="Epochs to train; with --resume, extends the run to this many."),
    batch_size: int = typer.Option(default("batch_size"), "--batch-size", min=1),
    lr: float = typer.Option(default("lr"), help="Learning rate (default: the optimizer's own, see `minicnn optimizers`)."),
    optimizer: str = typer.Option(default("optimizer"), help="sgd (Nesterov momentum), adam, or a plugin's: `minicnn optimizers`."),
    schedule: str = typer.Option(default("schedule"), help="cosine, step, none, or a plugin's: `minicnn schedules`."),
    weight_decay: float = typer.Option(default("weight_decay"), "--weight-decay"),
    augment: bool = typer.Option(default("augment"), help="Random crops (and flips for colour images)."),
    device: str = typer.Option(default("device"), help="cpu or cuda (cuda:N)."),
    seed: int = typer.Option(default("seed"), help="Make the run reproducible (same machine, same weights)."),
    out: str = typer.Option(default("out"), help="Run folder (default runs/MODEL-DATASET-TIME)."),
    model_arg: list[str] = model_args.option(),
    resume_from: str = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint, with its settings."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the earlier run in --out (its files only)."),
    limit_train: int = typer.Option(default("limit_train"), "--limit-train", help="Train on the first N images only."),
    sync_bn: bool = typer.Option(default("sync_bn"), "--sync-bn/--no-sync-bn",
                                 help="With several ranks: batch-norm statistics over the whole batch, not each rank's part."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train on N processes of this machine (started with mpiexec; "
                                                        "--batch-size stays the whole batch). See docs/distributed.md."),
    distributed: bool = typer.Option(False, "--distributed", help="Be one rank of the job an MPI launcher started "
                                                                  "(mpiexec -n N minicnn train ... --distributed; srun)."),
    as_json: bool = typer.Option(False, "--json", help="Progress on stderr; at the end one JSON object on stdout "
                                                       "(run_folder, dataset, epochs, test_accuracy, best_accuracy, seconds)."),
) -> None:
    """Train a model, evaluating on the test set and saving checkpoints after every epoch."""
    started = time.perf_counter()
    screen = errors if as_json else console
    given = _given(context)
    extend = epochs if resume_from and "epochs" in given else None
    if nproc > 1:
        train_distributed.start_ranks(context, nproc, distributed, screen, extend)
    communicator = None
    if distributed:
        communicator = train_distributed.join_job(device)
    else:
        train_distributed.refuse_ranks_without_distributed()
    lead = communicator is None or communicator.rank == 0
    config = None
    bars = train_distributed.RecordingBars(screen, lambda: resume_from or config.out)
    with train_distributed.errors_of(communicator):
        try:
            settings = {  # the settings a run records and a resume keeps, by their TrainConfig names
                "model": model, "dataset": dataset, "data_dir": _absolute(data_dir), "batch_size": batch_size,
                "optimizer": optimizer, "lr": lr, "schedule": schedule, "weight_decay": weight_decay,
                "augment": augment, "device": device, "seed": seed, "limit_train": limit_train,
                "model_options": model_args.parse_model_args(model_arg), "sync_bn": sync_bn,
            }
            if resume_from:
                if overwrite:
                    raise ValueError("--resume continues a run and --overwrite replaces one: pass one of them")
                typed = {name: value for name, value in settings.items() if OPTION_OF.get(name, name) in given}
                _refuse_changes(resume_from, typed, out if "out" in given else None)
                result = resume(resume_from, callbacks=bars, progress=DownloadBar(screen), notify=_notify, epochs=extend,
                                communicator=communicator)
            else:
                config = TrainConfig(**settings, epochs=epochs, out=out)
                result = run_training(config, callbacks=bars, progress=DownloadBar(screen), notify=_notify,
                                      overwrite=overwrite, communicator=communicator)
        except KeyboardInterrupt:
            bars.stop()
            if lead:
                _interrupted(resume_from or (config.out if config else None), bool(resume_from), bars, extend)
            raise typer.Exit(130) from None
        finally:
            bars.stop()
    if not lead:
        return
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps(_summary(result, seconds)))
    else:
        _finish(result, seconds)
    warn_about_plugin_problems()
