"""Whole training processes for cpu_train.py: the peak memory of a LeNet-5 training process, and one
full epoch of LeNet-5 on MNIST, for minicnn and for PyTorch.

Peak memory is the peak resident set size of a fresh child process: its VmHWM, which the child
reads from /proc/self/status as it exits (PEAK_WRAPPER; Linux). Not ru_maxrss from wait4 or
RUSAGE_CHILDREN: Linux carries the parent's peak into a child started by vfork and exec, so every
child would show at least this process's size, PyTorch loaded and all. The children:
- minicnn: `python -m minicnn train lenet5 --epochs 1 --limit-train STEPS*64` (batch 64), the command a user
  runs, on the data it finds (MNIST, else the bundled digits); it imports minicnn and never torch.
- PyTorch: this file, `python cpu_train_processes.py torch-lenet5 ...`, which imports NumPy and
  torch only and does the same work on random data: it holds as many uint8 images as minicnn's
  dataset, trains STEPS steps at batch 64 with minicnn train's optimizer, each batch scaled to
  [0, 1] and normalised, then evaluates the test images in batches of 256 under no_grad.
Both children run under `python -X importtime`, so the report says which frameworks each imported.

The epoch: `minicnn train lenet5 --epochs 1` in a child (its own training-loop seconds, from its
metrics.jsonl, and the whole command's wall time) against `torch_epoch` in the calling process,
the same loop written for the PyTorch twin over shuffled NumPy batches, no DataLoader.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # PyTorch is optional: cpu_train.py then measures minicnn alone
    torch = TF = None

TEST_BATCH = 256  # minicnn train evaluates in batches of minicnn.train.run.EVAL_BATCH_SIZE (256)
PEAK_MARK = "cpu_train_processes peak VmHWM kB:"
PEAK_METHOD = "VmHWM of the child process, read by the child from /proc/self/status as it exits, MB = 10^6 bytes"
PEAK_WRAPPER = f"""\
import atexit, os, runpy, sys

def report_peak():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("{PEAK_MARK}", peak, file=sys.stderr, flush=True)

atexit.register(report_peak)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    sys.path.insert(0, os.path.dirname(target))
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def run_child(target: str, arguments: list[str]) -> dict:
    """Run a module (`python -m target`) or a script (target ending in .py) with `arguments` in a
    fresh process, under PEAK_WRAPPER and -X importtime: exit code, wall seconds, peak RSS in MB
    (10^6 bytes), which of minicnn and torch it imported, and its output's tail on failure."""
    command = [sys.executable, "-X", "importtime", "-c", PEAK_WRAPPER, target, *arguments]
    started = time.perf_counter()
    child = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = (child.stdout + child.stderr).splitlines()
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    peaks = [int(line.split()[-1]) for line in lines if line.startswith(PEAK_MARK)]
    shown = [target] if target.endswith(".py") else ["-m", target]
    result = {"command": " ".join(["python", *shown, *arguments]), "returncode": child.returncode, "seconds": seconds,
              "peak_rss_mb": peaks[-1] * 1024 / 1e6 if peaks else None,
              "imported": {name: name in imported for name in ("minicnn", "torch")}}
    if child.returncode != 0 or not peaks:
        result["error"] = "\n".join(line for line in lines if not line.startswith("import time:"))[-2000:]
    return result


def minicnn_train(dataset: dict, limit_train: int | None) -> dict:
    """`minicnn train lenet5 --epochs 1 --seed 0` in a child on `dataset` ({"name", "data_dir"}),
    with its peak RSS and, from its metrics.jsonl, the training loop's seconds, images/s and test accuracy."""
    with tempfile.TemporaryDirectory() as folder:
        arguments = ["train", "lenet5", "--dataset", dataset["name"], "--epochs", "1", "--seed", "0",
                     "--out", str(Path(folder) / "run")]
        arguments += ["--data-dir", dataset["data_dir"]] if dataset["data_dir"] else []
        arguments += ["--limit-train", str(limit_train)] if limit_train else []
        result = run_child("minicnn", arguments)
        metrics = Path(folder) / "run" / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().strip():
            result["metrics"] = json.loads(metrics.read_text().splitlines()[-1])
    return result


def torch_memory(steps: int, threads: int, sizes: tuple[int, int], settings: dict) -> dict:
    """This file's torch-lenet5 child (see the module docstring) on (train, test) `sizes` images:
    its peak RSS and what it imported. settings: minicnn train's lr, momentum, weight_decay, batch_size."""
    return run_child(__file__, ["torch-lenet5", "--steps", str(steps), "--threads", str(threads),
                                "--train-images", str(sizes[0]), "--test-images", str(sizes[1]),
                                "--settings", json.dumps(settings)])


def normalized(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """uint8 images (B, C, H, W) -> float32 in [0, 1], then (x - mean[c]) / std[c], as minicnn's
    DataLoader and Normalize transform do; mean, std: (C,)."""
    batch = images.astype(np.float32) * np.float32(1 / 255)
    return (batch - mean[:, None, None]) * (1 / std)[:, None, None]


def torch_train_steps(model, optimizer, images, labels, order, batch: int, mean, std) -> dict:
    """One pass of SGD over images[order] (uint8 (N, C, H, W), labels (N,) int64) in batches of
    `batch`, as minicnn train's loop does it (the loss read every step, accuracy counted)."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    started = time.perf_counter()
    for start in range(0, len(order), batch):
        index = order[start:start + batch]
        x, y = torch.from_numpy(normalized(images[index], mean, std)), torch.from_numpy(labels[index])
        logits = model(x)
        loss = TF.cross_entropy(logits, y)
        loss_sum += loss.item() * len(index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        correct += int((logits.argmax(1) == y).sum())
        seen += len(index)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": seen, "images_per_second": seen / seconds, "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen}


def torch_test_accuracy(model, images, labels, mean, std) -> float:
    """Accuracy over uint8 images (N, C, H, W) in eval mode and no_grad, batches of TEST_BATCH."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), TEST_BATCH):
            x = torch.from_numpy(normalized(images[start:start + TEST_BATCH], mean, std))
            correct += int((model(x).argmax(1).numpy() == labels[start:start + TEST_BATCH]).sum())
    return correct / len(images)


def torch_sgd(model, settings: dict):
    """torch.optim.SGD with minicnn train's settings: lr, momentum, weight_decay, Nesterov when momentum > 0."""
    return torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                           weight_decay=settings["weight_decay"], nesterov=settings["momentum"] > 0)


def torch_epoch(twin, arrays: dict, settings: dict, seed: int) -> dict:
    """One epoch of `twin` (already holding minicnn's initial weights) over arrays["train_images"]
    (uint8 (N, 1, 28, 28)) shuffled by seed, then the test accuracy; seconds and images/s of the
    training loop and of the test pass. `arrays` also holds the labels and the normalisation's mean
    and std (C,); settings: minicnn train's lr, momentum, weight_decay and batch_size."""
    order = np.random.default_rng(seed).permutation(len(arrays["train_images"]))
    mean, std = arrays["mean"], arrays["std"]
    result = torch_train_steps(twin, torch_sgd(twin, settings), arrays["train_images"], arrays["train_labels"], order,
                               settings["batch_size"], mean, std)
    started = time.perf_counter()
    result["test_accuracy"] = torch_test_accuracy(twin, arrays["test_images"], arrays["test_labels"], mean, std)
    result["test_seconds"] = time.perf_counter() - started
    return result


def torch_child(args) -> None:
    """The torch-lenet5 child: random uint8 data as large as minicnn's dataset, `args.steps` steps
    at minicnn train's batch size, then the test pass (see the module docstring)."""
    from twins import torch_twin

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (args.train_images, 1, 28, 28), dtype=np.uint8)
    test_images = rng.integers(0, 256, (args.test_images, 1, 28, 28), dtype=np.uint8)
    train_labels, test_labels = rng.integers(0, 10, args.train_images), rng.integers(0, 10, args.test_images)
    mean, std = np.array([0.5], np.float32), np.array([0.25], np.float32)  # any will do for random data
    settings, model = json.loads(args.settings), torch_twin("lenet5")
    batch = settings["batch_size"]
    order = rng.permutation(args.train_images)[:args.steps * batch]
    torch_train_steps(model, torch_sgd(model, settings), train_images, train_labels, order, batch, mean, std)
    torch_test_accuracy(model, test_images, test_labels, mean, std)


def steps_for(limit_train: int, train_images: int, batch: int) -> int:
    """How many steps `minicnn train --limit-train limit_train` takes on a dataset of train_images."""
    return math.ceil(min(limit_train, train_images) / batch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the PyTorch training process whose peak memory cpu_train.py measures")
    parser.add_argument("role", choices=["torch-lenet5"])
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--train-images", type=int, required=True)
    parser.add_argument("--test-images", type=int, required=True)
    parser.add_argument("--settings", required=True, help='JSON: {"lr", "momentum", "weight_decay", "batch_size"}')
    torch_child(parser.parse_args())
