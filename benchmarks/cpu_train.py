"""minicnn against PyTorch on the CPU, whole models side by side in one run: LeNet-5 and ResNet-20
training steps, LeNet-5 inference, the peak memory of a training process and, on request, an epoch.

    python benchmarks/cpu_train.py [--threads N] [--quick] [--out FILE_OR_FOLDER] [--only NAME...]
                                   [--epoch] [--data-dir DIR]

Rows, float32, the same model, batch and thread count for both frameworks (the issue's target):
- lenet5-train-b64, lenet5-train-b128 (>= 1.5x): forward, cross-entropy, backward, an SGD step
  (lr 0.01, momentum 0.9) and zero_grad, on one fixed random batch of (1, 28, 28) images;
- lenet5-infer-b256 (>= 1.5x): eval mode, no autograd graph (minicnn's and torch's no_grad), forward;
- resnet20-train-b64 (>= 1.0x): the training step of the CIFAR ResNet-20 on (3, 32, 32) images;
- memory (<= 150 MB): the peak RSS of `minicnn train lenet5` in a child process that imports minicnn
  only, and of a PyTorch child doing the same work (cpu_train_processes.py);
- epoch (with --epoch or --only epoch; minutes): `minicnn train lenet5 --epochs 1` on MNIST against
  the same loop for PyTorch.
minicnn's models come from mc.create_model with nn.fuse_conv_relu applied, as `minicnn train` does;
PyTorch's are the twins of twins.py, loaded with minicnn's initial weights.

Timing: each framework warms up, then the two alternate window by window (minicnn, torch, minicnn,
torch...), so a change in the machine's load reaches both alike; a 0.25 s pause before each window
lets the other framework's worker threads stop spinning. A window repeats the call as often as an
untimed first window fitted into --window-s seconds; the median window gives ms per call and
images/s. ratio = minicnn images/s / torch images/s: above 1 minicnn is faster.

Checked once per row before timing: both start from the same weights, and their first call agrees
to float32 rounding (the loss and the weights after one step, or the logits).

--threads (default: every core) sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS
before NumPy loads (the child processes inherit them) and torch.set_num_threads.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One timed comparison: `mode` "train" (one SGD step) or "infer" (one forward pass without a
    graph) of a registered model on a fixed random batch x: (batch, *image), labels: (batch,)."""

    model: str
    mode: str
    batch: int
    image: tuple
    at_least: float  # the target: minicnn images/s / torch images/s

    @property
    def name(self) -> str:
        return f"{self.model}-{self.mode}-b{self.batch}"


ROWS = [Row("lenet5", "train", 64, (1, 28, 28), 1.5), Row("lenet5", "train", 128, (1, 28, 28), 1.5),
        Row("lenet5", "infer", 256, (1, 28, 28), 1.5), Row("resnet20", "train", 64, (3, 32, 32), 1.0)]
ALL_ROWS = (*(row.name for row in ROWS), "memory", "epoch")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both frameworks (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="3 short windows per row, 20 steps for the memory row: checks the script, not the speed")
    parser.add_argument("--out", type=Path, help="a .json file, or a folder for the default name "
                        "(default benchmarks/results/cpu-train-<host>-<date>.json)")
    parser.add_argument("--only", nargs="+", choices=ALL_ROWS, metavar="NAME",
                        help=f"rows to run: {', '.join(ALL_ROWS)}")
    parser.add_argument("--epoch", action="store_true", help="add the epoch row (a full MNIST epoch each, minutes)")
    parser.add_argument("--data-dir", help="a folder with MNIST's four files (else $MINICNN_DATA or minicnn's cache; "
                        "without MNIST the memory row uses the bundled digits and the epoch row is skipped)")
    parser.add_argument("--windows", type=int, help="timed windows per framework and row (default 9, 3 with --quick)")
    parser.add_argument("--window-s", type=float, help="least seconds per window (default 1, 0.2 with --quick)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)  # read once, when the BLAS and OpenMP libraries load

import numpy as np  # noqa: E402

import minicnn as mc  # noqa: E402
import minicnn.functional as F  # noqa: E402
from cpu_train_processes import minicnn_train, steps_for, torch_epoch, torch_memory  # noqa: E402
from cpu_train_report import new_report, print_header, print_row, write_report  # noqa: E402
from gpu_timing import attempt, relative_diff, torch  # noqa: E402
from minicnn.data import DataUnavailableError  # noqa: E402
from minicnn.data.sources import locate  # noqa: E402
from minicnn.plugin.manager import optimizer_entry  # noqa: E402
from minicnn.train.run import TrainConfig, channel_statistics  # noqa: E402

LEARNING_RATE = 0.01
AGREE = 1e-5  # largest relative difference float32 rounding explains for these models
MEMORY_STEPS, MEMORY_TARGET_MB = 100, 150.0


@dataclass(frozen=True)
class Timing:
    """Warm-up calls per framework, timed windows per framework, least seconds per window, and the
    pause before each window: NumPy's OpenBLAS threads spin for about 0.1 s after minicnn's last
    call (measured on the 2-core machine), taking a core from whatever runs next."""

    warmup: int
    windows: int
    window_s: float
    pause_s: float = 0.25


def minicnn_call(row: Row, state: dict, images: np.ndarray, labels: np.ndarray):
    """(model, call) for minicnn: call() runs one training step and returns the loss, or one
    forward pass and returns the logits (batch, 10). images: (batch, C, H, W) float32, labels: (batch,) int64."""
    model = mc.create_model(row.model)
    model.load_state_dict(state)
    mc.nn.fuse_conv_relu(model)
    x, y = mc.tensor(images), mc.tensor(labels)
    if row.mode == "infer":
        model.eval()

        def forward():
            with mc.no_grad():
                return model(x)

        return model, forward
    model.train()
    optimizer = mc.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return model, step


def twin_of(model: str, state: dict):
    """The PyTorch twin of minicnn's `model` (twins.py) holding minicnn's weights `state`."""
    from twins import load_minicnn_state, torch_twin  # needs PyTorch, which this script treats as optional

    return load_minicnn_state(torch_twin(model), state)


def torch_call(row: Row, state: dict, images: np.ndarray, labels: np.ndarray):
    """(model, call) for the PyTorch twin holding minicnn's weights `state`, as minicnn_call."""
    model = twin_of(row.model, state)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    if row.mode == "infer":
        model.eval()

        def forward():
            with torch.no_grad():
                return model(x)

        return model, forward
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return model, step


def torch_state(model) -> dict:
    """A PyTorch model's state_dict as NumPy arrays."""
    return {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}


def state_diff(mine: dict, theirs: dict) -> float:
    """Largest |difference| over every floating-point parameter and buffer, relative to the largest
    |value| of any (per tensor, rounding in batch-norm biases that start at zero would look large)."""
    floats = [name for name in theirs if theirs[name].dtype.kind == "f"]
    return max(float(np.abs(mine[name] - theirs[name]).max()) for name in floats) / max(
        float(np.abs(theirs[name]).max()) for name in floats)


def check(row: Row, built: dict) -> dict:
    """The first call of each framework from the same weights: initial weights, then the losses and
    the weights after the step (training) or the logits (inference); `agree` when all are within AGREE."""
    (mine, my_call), (twin, their_call) = built["minicnn"], built["torch"]
    result = {"initial_weights_rel_diff": state_diff(mine.state_dict(), torch_state(twin))}
    my_out, their_out = my_call().numpy(), their_call().detach().numpy()
    if row.mode == "train":
        result.update(loss_minicnn=float(my_out), loss_torch=float(their_out),
                      loss_abs_diff=abs(float(my_out) - float(their_out)),
                      weights_after_step_rel_diff=state_diff(mine.state_dict(), torch_state(twin)))
        worst = max(result["loss_abs_diff"] / max(abs(float(their_out)), 1.0), result["weights_after_step_rel_diff"])
    else:
        result["logits_rel_diff"] = worst = relative_diff(my_out, their_out)
    result["agree"] = result["initial_weights_rel_diff"] == 0.0 and worst <= AGREE
    return result


def time_interleaved(calls: dict, timing: Timing) -> dict:
    """Warm-up calls of each framework and one untimed window that counts how many calls fill
    timing.window_s, then `timing.windows` rounds of one window of that many calls per framework
    in turn. For each: the median window's ms per call, every window's, and the calls per window."""
    sizes = {}
    for name, call in calls.items():
        for _ in range(timing.warmup):
            call()
        sizes[name], started = 0, time.perf_counter()
        while sizes[name] == 0 or time.perf_counter() - started < timing.window_s:
            call()
            sizes[name] += 1
    windows = {name: [] for name in calls}
    for _ in range(timing.windows):
        for name, call in calls.items():
            time.sleep(timing.pause_s)
            started = time.perf_counter()
            for _ in range(sizes[name]):
                call()
            windows[name].append((time.perf_counter() - started) * 1e3 / sizes[name])
    return {name: {"ms": statistics.median(ms), "windows_ms": ms, "calls_per_window": sizes[name]}
            for name, ms in windows.items()}


def timed_row(row: Row, timing: Timing) -> dict:
    """Check, then time, one row; images/s for each framework and the ratio minicnn / torch."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((row.batch, *row.image), dtype=np.float32)
    labels = rng.integers(0, 10, row.batch).astype(np.int64)
    mc.manual_seed(0)
    state = mc.create_model(row.model).state_dict()
    result = {"name": row.name, "model": row.model, "mode": row.mode, "batch": row.batch, "image": row.image,
              "dtype": "float32", "minicnn_model": "mc.create_model, nn.fuse_conv_relu applied (as minicnn train)",
              "work": (f"forward, cross_entropy, backward, SGD(lr={LEARNING_RATE}, momentum=0.9).step, zero_grad"
                       if row.mode == "train" else "eval mode, no_grad, forward")}
    built = {"minicnn": minicnn_call(row, state, images, labels)}
    if torch is not None:
        built["torch"] = torch_call(row, state, images, labels)
        result["check"] = check(row, built)
    result["timings"] = time_interleaved({name: call for name, (_, call) in built.items()}, timing)
    for timed in result["timings"].values():
        timed["images_per_s"] = row.batch * 1e3 / timed["ms"]
    ratio = (result["timings"]["torch"]["ms"] / result["timings"]["minicnn"]["ms"]) if torch is not None else None
    met = None if ratio is None else ratio >= row.at_least
    result.update(ratio=ratio, target={"ratio_at_least": row.at_least, "met": met})
    if torch is not None:  # the same ratio from each framework's fastest window: how much the machine's drift moves it
        result["ratio_of_fastest_windows"] = (min(result["timings"]["torch"]["windows_ms"])
                                              / min(result["timings"]["minicnn"]["windows_ms"]))
    return result


def find_dataset(data_dir: str | None) -> dict:
    """{"name": "mnist", "data_dir": its folder} when MNIST's files are found without downloading
    (in data_dir, $MINICNN_DATA or minicnn's cache), else {"name": "digits", "data_dir": None}."""
    try:
        files = locate("mnist", data_dir=data_dir, download=False)
    except DataUnavailableError:
        return {"name": "digits", "data_dir": None}
    return {"name": "mnist", "data_dir": str(next(iter(files.values())).parent)}


@functools.lru_cache(maxsize=1)
def load_arrays(name: str, data_dir: str | None) -> dict:
    """A dataset as minicnn train loads it: uint8 train and test images (N, 1, 28, 28), int64 labels
    (N,), and the train images' per-channel mean and std (C,) float32, as its Normalize uses."""
    train, test = (mc.data.load_dataset(name, split, **({"data_dir": data_dir} if data_dir else {}))
                   for split in ("train", "test"))
    normalize = channel_statistics(train)
    return {"train_images": train.images, "train_labels": train.labels, "test_images": test.images,
            "test_labels": test.labels, "mean": np.asarray(normalize["mean"], np.float32),
            "std": np.asarray(normalize["std"], np.float32)}


def train_defaults() -> dict:
    """minicnn train's SGD settings and batch size (minicnn/plugin/builtin_optimizers.py: Nesterov when momentum > 0)."""
    config = TrainConfig()
    return {"lr": optimizer_entry("sgd").default_lr, "momentum": config.momentum, "weight_decay": config.weight_decay,
            "batch_size": config.batch_size}


def memory_row(dataset: dict, threads: int, quick: bool) -> dict:
    """Peak RSS of a LeNet-5 training process, minicnn's against PyTorch's (cpu_train_processes.py).
    The target is judged on MNIST only: the bundled digits (1,438 images) make a smaller process."""
    arrays, settings = load_arrays(dataset["name"], dataset["data_dir"]), train_defaults()
    sizes, batch = (len(arrays["train_images"]), len(arrays["test_images"])), settings["batch_size"]
    limit = (MEMORY_STEPS // 5 if quick else MEMORY_STEPS) * batch
    steps = steps_for(limit, sizes[0], batch)
    result = {"name": "memory", "dataset": dataset["name"], "steps": steps, "batch": batch,
              "minicnn": minicnn_train(dataset, limit),
              "torch_work": f"random uint8 data of the dataset's size ({sizes[0]} train, {sizes[1]} test images), "
                            f"{steps} steps at batch {batch} with minicnn train's SGD, then the test images in "
                            "batches of 1000; imports NumPy and torch only"}
    if torch is not None:
        result["torch"] = torch_memory(steps, threads, sizes, settings)
    peak = None if "error" in result["minicnn"] else result["minicnn"]["peak_rss_mb"]
    met = None if peak is None or dataset["name"] != "mnist" else peak <= MEMORY_TARGET_MB
    result["target"] = {"peak_rss_mb_at_most": MEMORY_TARGET_MB, "met": met, "judged": "on MNIST only (--data-dir)"}
    return result


def epoch_row(dataset: dict) -> dict:
    """One full epoch of LeNet-5 on MNIST: `minicnn train` in a child against torch_epoch here,
    from the same initial weights (seed 0); ratio of the training loops' images/s."""
    if dataset["name"] != "mnist":
        return {"name": "epoch", "skipped": "MNIST not found (pass --data-dir)"}
    result = {"name": "epoch", "dataset": "mnist", "minicnn": minicnn_train(dataset, None),
              "torch_work": "the same loop over shuffled NumPy batches, minicnn train's SGD, batch, normalisation "
                            "and initial weights, then the test set in batches of 1000"}
    if torch is not None:
        mc.manual_seed(0)  # what `minicnn train --seed 0` does before it builds the model
        twin = twin_of("lenet5", mc.create_model("lenet5", num_classes=10, in_channels=1).state_dict())
        result["torch"] = torch_epoch(twin, load_arrays(dataset["name"], dataset["data_dir"]), train_defaults(), seed=0)
        mine = result["minicnn"].get("metrics", {}).get("images_per_second")
        result["ratio"] = mine / result["torch"]["images_per_second"] if mine else None
    return result


def selected(args) -> list[str]:
    """The rows to run, in ALL_ROWS order: --only's, else every row but the epoch (unless --epoch)."""
    wanted = set(args.only or ALL_ROWS[:-1]) | ({"epoch"} if args.epoch else set())
    return [name for name in ALL_ROWS if name in wanted]


def main(args) -> dict:
    """Every selected row in turn, printed and written to the JSON as soon as it is measured."""
    started = time.perf_counter()
    if torch is not None:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # refused once PyTorch has started its inter-op pool
            pass
    timing = Timing(warmup=1 if args.quick else 3, windows=args.windows or (3 if args.quick else 9),
                    window_s=args.window_s or (0.2 if args.quick else 1.0))
    dataset = find_dataset(args.data_dir)
    report, path = new_report(args, timing, dataset)
    print_header(report, path)
    rows = {row.name: row for row in ROWS}
    for name in selected(args):
        if name in rows:
            result = attempt(lambda: timed_row(rows[name], timing))
        elif name == "memory":
            result = attempt(lambda: memory_row(dataset, args.threads, args.quick))
        else:
            result = attempt(lambda: epoch_row(dataset))
        result.setdefault("name", name)
        print_row(result)
        report["rows"].append(result)
        write_report(report, path)
    report.update(complete=True, seconds=time.perf_counter() - started, load_average_end=os.getloadavg())
    write_report(report, path)
    print(f"\nratio = minicnn images/s / torch images/s (>1: minicnn faster); {report['seconds']:.0f} s; wrote {path}")
    return report


if __name__ == "__main__":
    main(ARGS)
