"""`minicnn train`: the output of a short run, resuming and extending a run, Ctrl-C, `--json`,
`--model-arg`, unwrapped paths, and one error line with a non-zero exit code (never a traceback) for
every kind of bad input."""

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from minicnn import backend
from minicnn.cli import app
from minicnn.train import RunFolder
from minicnn.train.checkpoint import load_checkpoint

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror


def flat(text: str) -> str:
    """The output with its line wrapping undone (for messages longer than a line)."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`minicnn train lenet5 --dataset digits --epochs 2 --seed 0 --out DIR`: (result, DIR)."""
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "2", "--seed", "0",
                                     "--out", str(out)])
    return result, out


def assert_fails(result, code: int, *fragments: str):
    """A clean failure: the exit code, an `error:` line naming each fragment, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.lstrip().startswith("error:") and "Traceback" not in result.output
    for fragment in fragments:
        assert flat(fragment) in flat(result.output), result.output


def metrics_of(out) -> list[dict]:
    return RunFolder(out).read_metrics()


def test_train_prints_each_epoch_and_where_the_run_is(run):
    result, out = run
    assert result.exit_code == 0, result.output
    metrics = metrics_of(out)
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        line = (rf"epoch{m['epoch']}loss{m['train_loss']:.4f}acc[0-9.]+%\|testloss{m['test_loss']:.4f}"
                rf"acc{m['test_accuracy']:.2%}\|[0-9]+s[0-9,]+img/s")
        assert re.search(line, flat(result.output)), result.output
    assert flat(f"on digits: test accuracy {metrics[-1]['test_accuracy']:.2%}") in flat(result.output)
    folder = RunFolder(out)
    assert f"run saved in {out}  (checkpoints {folder.last.name}, {folder.best.name}; metrics.jsonl)" in result.output
    assert folder.config_file.is_file() and folder.last.is_file() and folder.best.is_file()


def test_resume_of_a_finished_run_has_nothing_left_to_train(run):
    _, out = run
    result = runner.invoke(app, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert f"resuming {out} from epoch 2 of 2" in result.output
    assert "nothing left to train" in result.output


def short_run(*arguments):
    return runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--limit-train", "64",
                               "--seed", "0", *arguments])


def test_resume_with_epochs_extends_the_run_as_if_it_had_never_stopped(tmp_path):
    extended, straight = tmp_path / "extended", tmp_path / "straight"
    assert short_run("--out", str(extended), "--schedule", "none").exit_code == 0
    result = runner.invoke(app, ["train", "--resume", str(extended), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"note: resuming {extended} from epoch 1 of 3", result.output
    assert "epoch 1  " not in result.output and "epoch  2" in result.output and "epoch  3" in result.output
    reference = short_run("--out", str(straight), "--schedule", "none", "--epochs", "3")
    assert reference.exit_code == 0, reference.output
    ran, expected = metrics_of(extended), metrics_of(straight)
    assert [m["epoch"] for m in ran] == [1, 2, 3]
    for mine, theirs in zip(ran, expected):  # a constant lr: the very same steps as an unbroken run
        assert (mine["train_loss"], mine["test_accuracy"]) == (theirs["train_loss"], theirs["test_accuracy"])
    weights, reference_weights = (load_checkpoint(RunFolder(f).last).model for f in (extended, straight))
    for name in reference_weights:
        np.testing.assert_array_equal(weights[name], reference_weights[name])


def test_resume_with_fewer_epochs_than_done_is_refused(run):
    _, out = run
    before = (out / "metrics.jsonl").read_bytes()
    assert_fails(runner.invoke(app, ["train", "--resume", str(out), "--epochs", "1"]), 1,
                 f"epochs (--epochs) 1 is fewer than the 2 that {out} has done", "give 2 or more")
    assert (out / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    "arguments, given, recorded",
    [(["--lr", "0.5"], "--lr 0.5", "no --lr"),
     (["--batch-size", "32"], "--batch-size 32", "--batch-size 64"),
     (["--dataset", "mnist"], "--dataset mnist", "--dataset digits"),
     (["--augment"], "--augment", "--no-augment"),
     (["--model-arg", "padding=0"], "--model-arg padding=0", "no --model-arg"),
     (["alexnet"], "model alexnet", "model lenet5"),
     (["--seed", "1", "--optimizer", "adam"], "--optimizer adam (the run has --optimizer sgd); --seed 1", "--seed 0")],
    ids=["lr", "batch-size", "dataset", "augment", "model-arg", "model", "two"],
)
def test_resume_refuses_options_that_change_the_run_naming_its_value(run, arguments, given, recorded):
    _, out = run
    files = {path.name: path.read_bytes() for path in out.iterdir()}
    result = runner.invoke(app, ["train", "--resume", str(out), *arguments])
    assert_fails(result, 1, f"{out} keeps the settings it was started with", f"{given} (the run has {recorded})",
                 "start a new run with another --out")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == files


def test_resume_takes_options_that_repeat_the_run_s_own(run):
    _, out = run
    result = runner.invoke(app, ["train", "lenet5", "--resume", str(out), "--seed", "0", "--dataset", "digits",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing left to train" in result.output
    assert_fails(runner.invoke(app, ["train", "--resume", str(out), "--out", str(out.parent / "elsewhere")]), 1,
                 "a resumed run stays in its own folder")


def test_ctrl_c_keeps_the_last_epoch_and_prints_the_command_that_resumes(tmp_path, monkeypatch):
    from minicnn.cli.progress import ProgressBars

    out = tmp_path / "run"
    on_batch = ProgressBars.on_batch

    def interrupt_in_epoch_2(self, epoch, batch, *rest):
        if epoch == 2:
            raise KeyboardInterrupt
        on_batch(self, epoch, batch, *rest)

    monkeypatch.setattr(ProgressBars, "on_batch", interrupt_in_epoch_2)
    result = short_run("--out", str(out), "--epochs", "3", "--schedule", "none")
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert "stopped (Ctrl-C): the run keeps epoch 1, its last finished one" in result.output
    command = f"minicnn train --resume {out}"
    assert result.stderr.splitlines()[-1] == f"  {command}"
    assert load_checkpoint(RunFolder(out).last).meta["epoch"] == 1 and not (out / ".minicnn.lock").exists()
    monkeypatch.undo()
    resumed = runner.invoke(app, shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert [m["epoch"] for m in metrics_of(out)] == [1, 2, 3]


def test_ctrl_c_while_extending_a_run_keeps_the_new_epoch_count_in_the_command(tmp_path, monkeypatch):
    from minicnn.cli.progress import ProgressBars

    out = tmp_path / "run"
    assert short_run("--out", str(out)).exit_code == 0
    monkeypatch.setattr(ProgressBars, "on_batch", lambda *arguments: (_ for _ in ()).throw(KeyboardInterrupt))
    result = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "4"])
    assert result.exit_code == 130, result.output
    assert f"minicnn train --resume {out} --epochs 4" in result.output
    assert "no epoch finished since the resume" in result.output


def test_ctrl_c_before_training_began_says_nothing_was_saved(tmp_path, monkeypatch):
    import minicnn.train.run as run_module

    def interrupted(*arguments, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "load_split", interrupted)
    result = short_run("--out", str(tmp_path / "run"))
    assert result.exit_code == 130, result.output
    assert "before training began: nothing was saved" in result.output and "--resume" not in result.output


def test_model_arg_reaches_the_factory_and_is_recorded(tmp_path):
    out = tmp_path / "run"
    result = short_run("--out", str(out), "--model-arg", "padding=2")
    assert result.exit_code == 0, result.output
    assert RunFolder(out).read_settings()["model_options"] == {"padding": 2}
    # padding=0 shrinks LeNet-5's maps to 4x4 while its classifier expects 5x5: the factory got it
    refused = short_run("--out", str(tmp_path / "narrow"), "--model-arg", "padding=0")
    assert_fails(refused, 1, "lenet5")
    assert not (tmp_path / "narrow" / "metrics.jsonl").exists()


def test_model_arg_with_a_wrong_key_names_the_model_and_the_key(tmp_path):
    result = short_run("--out", str(tmp_path / "run"), "--model-arg", "widht=3")
    assert_fails(result, 1, "model 'lenet5'", "widht")
    assert_fails(short_run("--out", str(tmp_path / "run"), "--model-arg", "padding"), 1, "--model-arg must be KEY=VALUE")


def test_an_unknown_model_suggests_a_name(tmp_path):
    result = runner.invoke(app, ["train", "lenett", "--dataset", "digits", "--out", str(tmp_path / "run")])
    assert_fails(result, 2, "did you mean 'lenet5'")


@pytest.mark.parametrize("model, fragment", [("lenet6", "unknown model 'lenet6'"), ("missing.toml", "not found")])
def test_the_model_is_checked_before_any_dataset_is_looked_for(tmp_path, offline, model, fragment):
    result = runner.invoke(app, ["train", model, "--out", str(tmp_path / "run")])
    assert_fails(result, 2 if model == "lenet6" else 1, fragment)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "mnist" not in result.output.lower() and "digits" not in result.output


def test_a_broken_spec_is_refused_before_any_dataset_is_looked_for(tmp_path, offline):
    spec = tmp_path / "net.toml"
    spec.write_text('[[layers]]\ntype = "Conv2x"\n', encoding="utf-8")
    result = runner.invoke(app, ["train", str(spec), "--out", str(tmp_path / "run")])
    assert_fails(result, 1, "Conv2x")
    assert "mnist" not in result.output.lower()


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a usable GPU")
def test_cuda_without_a_gpu_speaks_of_the_device_flag(tmp_path):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--device", "cuda", "--out", str(tmp_path / "r")])
    assert_fails(result, 2, "cuda", "--device cpu")
    assert "device='cpu'" not in result.output
    assert not (tmp_path / "r").exists()


def test_the_train_options_default_to_the_config_s_defaults():
    from dataclasses import fields

    from typer.main import get_command

    from minicnn.train import TrainConfig
    from minicnn.train.config import default

    options = {p.name: p.default for p in get_command(app).commands["train"].params}
    shared = [f.name for f in fields(TrainConfig) if f.name in options]
    assert len(shared) == 15 and {name: options[name] for name in shared} == {name: default(name) for name in shared}


def test_an_unknown_optimizer(tmp_path):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--optimizer", "nosuch", "--out", str(tmp_path / "r")])
    assert_fails(result, 1, "unknown optimizer 'nosuch'", "sgd or adam")


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    assert_fails(runner.invoke(app, ["train", "--resume", str(tmp_path)]), 1, "not a minicnn run folder")
    assert_fails(runner.invoke(app, ["train", "--resume", str(tmp_path), "--lr", "0.1"]), 1, "not a minicnn run folder")


def test_training_into_a_folder_holding_a_run(run):
    _, out = run
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--out", str(out)])
    assert_fails(result, 1, "already holds a run", f"--resume {out}")


def test_a_folder_in_use_by_a_run_is_refused_naming_the_pid(run):
    _, out = run
    with RunFolder(out).claim_existing():
        for arguments in (["--resume", str(out)], ["lenet5", "--dataset", "digits", "--out", str(out), "--overwrite"]):
            assert_fails(runner.invoke(app, ["train", *arguments]), 1, f"{out} is in use by another minicnn run",
                         f"PID {os.getpid()}")


def test_overwrite_replaces_a_run_but_never_a_folder_that_is_not_one(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my settings")
    for extra in ([], ["--overwrite"]):
        assert_fails(short_run("--out", str(mine), *extra), 1, "holds no minicnn run (config.json)", "choose another --out")
    assert [p.name for p in mine.iterdir()] == ["config.json"] and (mine / "config.json").read_text() == "my settings"
    out = tmp_path / "run"
    assert short_run("--out", str(out)).exit_code == 0
    assert_fails(short_run("--out", str(out), "--seed", "1"), 1, "already holds a run", "--overwrite")
    result = short_run("--out", str(out), "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert_fails(runner.invoke(app, ["train", "--resume", str(out), "--overwrite"]), 1, "pass one of them")


def test_the_summary_after_a_resume_gives_the_best_accuracy_of_the_whole_run(tmp_path, monkeypatch):
    import minicnn.train.trainer as trainer_module

    out = tmp_path / "run"
    monkeypatch.setattr(trainer_module, "evaluate", lambda model, loader, device, communicator=None: (1.0, 0.9))
    assert short_run("--out", str(out)).exit_code == 0
    monkeypatch.setattr(trainer_module, "evaluate", lambda model, loader, device, communicator=None: (1.0, 0.5))
    result = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert flat("test accuracy 50.00% (best 90.00%)") in flat(result.output)
    assert flat("nothing left to train (best 90.00%)") in flat(runner.invoke(app, ["train", "--resume", str(out)]).output)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_weights_that_became_nan_are_not_saved_and_the_run_fails(tmp_path):
    result = short_run("--out", str(tmp_path / "r"), "--lr", "1e39", "--batch-size", "64")  # one step of epoch 1
    assert_fails(result, 1, "became NaN or infinite during epoch 1 (the loss was still finite)", "--lr")
    assert "NonFiniteWeightsError" not in result.output and "--debug" not in result.output  # a known error
    folder = RunFolder(tmp_path / "r")
    assert not folder.best.exists() and not folder.last.exists()


def test_mnist_offline_names_what_was_tried_and_does_not_fall_back(tmp_path, offline):
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for fragment in ("dataset 'mnist' is not available", "unreachable", os.environ["MINICNN_MIRROR"].rstrip("/"), str(offline)):
        assert flat(fragment) in flat(result.output), result.output
    assert "digits" not in result.output and "run saved in" not in result.output
    assert "DataUnavailableError" not in result.output and "--debug" not in result.output  # a known error, not a crash
    assert not RunFolder(tmp_path / "r").last.exists()


def test_no_dataset_offline_falls_back_to_digits_with_a_note(tmp_path, offline):
    result = runner.invoke(app, ["train", "lenet5", "--epochs", "1", "--limit-train", "300", "--seed", "0",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    for fragment in ("note:", "dataset 'mnist' is not available", "Training on the bundled 'digits' dataset instead",
                     "done in", "on digits"):
        assert flat(fragment) in flat(result.output), result.output
    assert np.isfinite(metrics_of(tmp_path / "r")[0]["test_loss"])


def test_without_a_c_compiler_training_warns_in_one_line_and_runs(tmp_path, monkeypatch):
    from minicnn.kernels import native

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path / "kernels"))
    native._load.cache_clear()
    try:
        result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--epochs", "1", "--limit-train", "64",
                                     "--seed", "0", "--out", str(tmp_path / "r")])
    finally:
        monkeypatch.undo()
        native._load.cache_clear()
    assert result.exit_code == 0, result.output
    assert flat("warning: minicnn: the C kernels were not built") in flat(result.output), result.output
    assert "native.py" not in result.output and "NativeBuildWarning" not in result.output
    assert RunFolder(tmp_path / "r").last.exists()


@pytest.mark.parametrize(
    "option, value, fragment",
    [("--lr", "nan", "lr (--lr) must be a finite number >= 0, got nan"),
     ("--lr", "inf", "lr (--lr) must be a finite number >= 0, got inf"),
     ("--weight-decay", "-inf", "weight_decay (--weight-decay) must be a finite number >= 0"),
     ("--limit-train", "0", "limit_train (--limit-train) must be a whole number >= 1, got 0"),
     ("--limit-train", "-5", "limit_train (--limit-train) must be a whole number >= 1, got -5"),
     ("--optimizer", "sdg", "unknown optimizer 'sdg': use sgd or adam")],
)
def test_a_setting_that_cannot_work_is_refused_before_any_work(tmp_path, option, value, fragment):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "lenet5", "--dataset", "digits", "--out", str(out), option, value])
    assert_fails(result, 1, fragment)
    assert not out.exists()


def test_a_spec_whose_outputs_are_not_the_classes_is_refused_naming_both_numbers(tmp_path):
    spec = tmp_path / "wide.toml"
    spec.write_text('[[layers]]\ntype = "Flatten"\n\n[[layers]]\ntype = "Linear"\nin_features = 784\n'
                    'out_features = 37\n', encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(spec), "--dataset", "digits", "--out", str(out)])
    assert_fails(result, 1, "gives 37 outputs per image (its last layer, '1' (Linear))", "has 10 classes")
    assert not RunFolder(out).last.exists()


# -- as a script sees it: real pipes, a narrow console ------------------------------------------------

def minicnn(*arguments, columns: int = 80, cwd=None):
    """`python -m minicnn ARGUMENTS` with stdout and stderr as pipes and the console COLUMNS wide."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "minicnn", *arguments], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_json_puts_one_object_on_stdout_and_the_progress_on_stderr(tmp_path):
    out = tmp_path / "run"
    done = minicnn("train", "lenet5", "--dataset", "digits", "--epochs", "2", "--limit-train", "64", "--seed", "0",
                   "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # the whole of stdout is one JSON object
    metrics = metrics_of(out)
    assert summary["run_folder"] == str(out) and summary["dataset"] == "digits" and summary["epochs"] == 2
    assert summary["test_accuracy"] == metrics[-1]["test_accuracy"]
    assert summary["best_accuracy"] == max(m["test_accuracy"] for m in metrics)
    assert 0 < summary["seconds"] < 300
    assert "epoch  2" in done.stderr and "epoch  " not in done.stdout
    extended = minicnn("train", "--resume", str(out), "--epochs", "3", "--json")
    assert extended.returncode == 0, extended.stderr
    assert json.loads(extended.stdout)["epochs"] == 3 and f"resuming {out} from epoch 2 of 3" in extended.stderr


def test_paths_are_never_wrapped_in_a_narrow_pipe(tmp_path):
    out = tmp_path / "a-run-folder-whose-path-is-much-longer-than-forty-columns" / "run"
    done = minicnn("train", "lenet5", "--dataset", "digits", "--epochs", "1", "--limit-train", "64", "--seed", "0",
                   "--out", str(out), columns=40)
    assert done.returncode == 0, done.stderr
    assert any(line.startswith(f"run saved in {out}") for line in done.stdout.splitlines()), done.stdout
    refused = minicnn("train", "--resume", str(out), "--batch-size", "8", columns=40)
    assert refused.returncode == 1
    assert any(f"{out} keeps the settings" in line for line in refused.stderr.splitlines()), refused.stderr
