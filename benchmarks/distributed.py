"""Data-parallel training on this machine (issue 18): minicnn's ranks against its own single process
and against PyTorch DDP, MPI all-reduce latency and bandwidth, and each built-in model's step time
for the scaling model of docs/distributed.md.

    python benchmarks/distributed.py --data-dir ../shared/data/mnist      # about 20 minutes on 2 cores
    python benchmarks/distributed.py --quick                              # a minute: checks the script
    python benchmarks/distributed.py --only lenet5 allreduce

Throughput rows (lenet5: MNIST, global batch 64; resnet20: random uint8 3x32x32 images, global
batch 128), float32, images/s over whole epochs of the training loop, the first epoch a warm-up:
- minicnn-1x2: `mc.fit` in one process with 2 threads;
- minicnn-2x1: `mc.fit(..., distributed=True)` under `mpiexec -n 2 -bind-to core`, 1 thread each
  (the real loop, its all-reduce included);
- torch-ddp-2x1: the same loop in PyTorch, DistributedDataParallel on gloo, under the same mpiexec;
- torch-1x2: that loop in one process with 2 threads.
Each layout is a fresh process (throughput.py) per round; rounds alternate the layouts, so a change
in the machine's load reaches all alike. Before each run the script waits (up to 2 minutes) for a
quiet second, and it records the CPU the machine's other processes used during the run: runs they
disturbed (more than DISTURBED_CORES) are left out of the medians when every layout has an
undisturbed one. Reported: the median timed epoch of the counted runs. Targets:
minicnn-2x1 / minicnn-1x2 >= 0.9, minicnn-2x1 / torch-ddp-2x1 >= 3.

allreduce: allreduce.py under `mpiexec -n 2 -bind-to core`, 4 B to 64 MB, and the ring model's
latency and bandwidth fitted to it (distributed/scaling.py). steps: model_step.py, one process
with every core, each built-in model's training step at its registered input size; with the
all-reduce sizes (parameters x 4 bytes), the projection of 8 to 64 ranks over assumed links.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "distributed"))

from scaling import LINKS, RANKS, fit_ring, projection  # noqa: E402

RESULT_MARK = "distributed-benchmark-result:"
ALL_ROWS = ("lenet5", "resnet20", "allreduce", "steps")
# a run during which the machine's other processes used more CPU than this (in cores) is not counted
# when every layout has an undisturbed run: the 1 x 2 layouts lose up to 20x to a busy machine
DISTURBED_CORES = 0.1


@dataclass(frozen=True)
class Layout:
    """framework ("minicnn" or "torch") x ranks x threads per rank."""

    framework: str
    ranks: int
    threads: int

    @property
    def name(self) -> str:
        ddp = "-ddp" if self.framework == "torch" and self.ranks > 1 else ""
        return f"{self.framework}{ddp}-{self.ranks}x{self.threads}"


LAYOUTS = (Layout("minicnn", 1, 2), Layout("minicnn", 2, 1), Layout("torch", 2, 1), Layout("torch", 1, 2))


@dataclass(frozen=True)
class Workload:
    """A model trained for the throughput rows: global batch, steps per epoch, image shape (C, H, W)."""

    model: str
    batch: int
    steps: int
    image: tuple


WORKLOADS = {"lenet5": Workload("lenet5", 64, 300, (1, 28, 28)), "resnet20": Workload("resnet20", 128, 10, (3, 32, 32))}
# (model, batch per rank) for the scaling model: the CIFAR/MNIST models at their benchmark batch, the
# ImageNet-sized ones (3x224x224) at 8, which keeps VGG-16's steps near 20 s on this 2-core machine
STEP_MODELS = (("lenet5", 64), ("resnet20", 128), ("alexnet", 8), ("googlenet", 8), ("resnet18", 8),
               ("resnet50", 8), ("vgg11", 8), ("vgg16", 8))
TARGETS = ({"ratio": "minicnn-2x1 / minicnn-1x2", "at_least": 0.9},
           {"ratio": "minicnn-2x1 / torch-ddp-2x1", "at_least": 3.0})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 round, short epochs, two model steps: checks the script")
    parser.add_argument("--only", nargs="+", choices=ALL_ROWS, metavar="NAME", help=f"rows: {', '.join(ALL_ROWS)}")
    parser.add_argument("--rounds", type=int, help="fresh runs of each layout, interleaved (default 5)")
    parser.add_argument("--epochs", type=int, help="timed epochs per run, after the warm-up epoch (default 4)")
    parser.add_argument("--data-dir", help="a folder with MNIST's four files (else $MINICNN_DATA or minicnn's cache; "
                        "without MNIST, LeNet-5 trains on random images)")
    parser.add_argument("--no-bind", action="store_true",
                        help="leave out mpiexec's -bind-to core (MPICH's Hydra option)")
    parser.add_argument("--out", type=Path, help="a .json file or a folder (default benchmarks/results/"
                        "distributed-<host>-<date>.json)")
    return parser.parse_args(argv)


def child_env(threads: int) -> dict:
    """The environment of a run with `threads` threads per process, set before its libraries load."""
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[variable] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    return env


def launcher(ranks: int, bind: bool) -> list[str]:
    """mpiexec's words for `ranks` ranks (nothing for one process)."""
    if ranks == 1:
        return []
    return ["mpiexec", "-n", str(ranks), *(["-bind-to", "core"] if bind else [])]


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores; /proc/stat, Linux)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def wait_until_quiet(most_s: float = 120.0, busy_cores_at_most: float = 0.1) -> float:
    """Wait (up to most_s) until the machine's other work uses at most busy_cores_at_most cores over a
    second; the seconds waited. The 1 x 2 layouts lose most to a busy machine: an OpenMP thread that
    waits for a descheduled partner spins."""
    started = time.perf_counter()
    while time.perf_counter() - started < most_s:
        before = machine_busy_s()
        time.sleep(1.0)
        if machine_busy_s() - before <= busy_cores_at_most:
            break
    return time.perf_counter() - started


def run_child(command: list[str], threads: int, timeout_s: float) -> dict:
    """Run a benchmark child; its RESULT_MARK JSON (or an error record with the output's tail), with
    `others_cores`: the CPU other processes of the machine used meanwhile, in cores (0: undisturbed)."""
    started, busy = time.perf_counter(), machine_busy_s()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        child = subprocess.run(command, capture_output=True, text=True, env=child_env(threads), timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        return {"error": f"timed out after {timeout_s:.0f} s", "command": " ".join(command),
                "output_tail": str(error.stdout or "")[-1500:]}
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    others = max(0.0, machine_busy_s() - busy - mine) / wall
    found = [line for line in child.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if child.returncode != 0 or not found:
        return {"error": f"exit {child.returncode}", "command": " ".join(command), "others_cores": others,
                "output_tail": (child.stdout + child.stderr)[-1500:]}
    return {**json.loads(found[-1][len(RESULT_MARK):]), "wall_s": wall, "others_cores": others}


def training_data(workload: Workload, data_dir: str | None, folder: Path) -> dict:
    """Write the images (steps * batch, C, H, W) uint8 and labels every run of `workload` trains on;
    LeNet-5 takes MNIST's first training images when found, otherwise (and ResNet-20) random images."""
    count = workload.steps * workload.batch
    rng = np.random.default_rng(0)
    source = f"random uint8 images {workload.image}, random labels 0..9 (seed 0)"
    images = rng.integers(0, 256, (count, *workload.image), dtype=np.uint8)
    labels = rng.integers(0, 10, count).astype(np.int64)
    if workload.model == "lenet5":
        import minicnn as mc
        from minicnn.data import DataUnavailableError

        try:
            mnist = mc.data.load_dataset("mnist", "train", **({"data_dir": data_dir} if data_dir else {}),
                                         download=False)
            images, labels = mnist.images[:count], mnist.labels[:count].astype(np.int64)
            source = f"MNIST's first {count} training images"
        except DataUnavailableError:
            pass
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    return {"images": count, "source": source}


def throughput_row(workload: Workload, rounds: int, epochs: int, bind: bool, data_dir: str | None) -> dict:
    """Every layout `rounds` times, interleaved; each layout's median timed epoch and the ratios."""
    row = {"name": workload.model, "batch_global": workload.batch, "steps_per_epoch": workload.steps,
           "epochs_per_run": 1 + epochs, "warmup": "epoch 1 of every run, dropped",
           "runs": {layout.name: [] for layout in LAYOUTS}}
    with tempfile.TemporaryDirectory() as folder:
        row["data"] = training_data(workload, data_dir, Path(folder))
        for round_ in range(rounds):
            for layout in LAYOUTS:
                command = [*launcher(layout.ranks, bind), sys.executable, str(HERE / "distributed" / "throughput.py"),
                           layout.framework, "--model", workload.model, "--batch", str(workload.batch),
                           "--epochs", str(1 + epochs), "--threads", str(layout.threads), "--data", folder,
                           "--port", str(29400 + round_)]
                waited = wait_until_quiet()
                result = {**run_child(command, layout.threads, timeout_s=600), "waited_for_quiet_s": waited}
                row["runs"][layout.name].append(result)
                shown = (f"{statistics.median(e['images_per_second'] for e in result['epochs'][1:]):,.0f} img/s"
                         if "epochs" in result else result["error"])
                print(f"  {workload.model} round {round_ + 1} {layout.name:<16}{shown:<16}other processes "
                      f"{result['others_cores']:.2f} cores", flush=True)
    kept = {name: [run for run in runs if "epochs" in run] for name, runs in row["runs"].items()}
    quiet = {name: [run for run in runs if run["others_cores"] <= DISTURBED_CORES] for name, runs in kept.items()}
    row["counted"] = (f"runs the machine's other processes left undisturbed (<= {DISTURBED_CORES} cores)"
                      if all(quiet.values()) else "every run: some layout had no undisturbed run")
    counted = quiet if all(quiet.values()) else kept
    row["images_per_s"], row["fastest_epoch_images_per_s"] = {}, {}
    for name, runs in counted.items():
        timed = [e["images_per_second"] for run in runs for e in run["epochs"][1:]]
        row["images_per_s"][name] = statistics.median(timed) if timed else None
        row["fastest_epoch_images_per_s"][name] = max(timed) if timed else None
    row["ratios"] = [ratio(row, target) for target in TARGETS]
    rate = row["images_per_s"]
    row["torch_ddp_over_torch_single"] = (rate["torch-ddp-2x1"] / rate["torch-1x2"]
                                          if rate["torch-ddp-2x1"] and rate["torch-1x2"] else None)
    return row


def ratio(row: dict, target: dict) -> dict:
    """A target's ratio from the median epochs (and, to show the machine's drift, the fastest ones)."""
    top, bottom = target["ratio"].split(" / ")
    value = (row["images_per_s"][top] / row["images_per_s"][bottom]
             if row["images_per_s"][top] and row["images_per_s"][bottom] else None)
    fastest = row["fastest_epoch_images_per_s"]
    return {"ratio": target["ratio"], "value": value, "at_least": target["at_least"],
            "met": None if value is None else value >= target["at_least"],
            "of_fastest_epochs": fastest[top] / fastest[bottom] if fastest[top] and fastest[bottom] else None}


def allreduce_row(bind: bool, quick: bool) -> dict:
    command = [*launcher(2, bind), sys.executable, str(HERE / "distributed" / "allreduce.py"),
               "--largest-mb", "4" if quick else "64", "--least-s", "0.05" if quick else "0.3"]
    result = run_child(command, 1, timeout_s=600)
    if "sizes" in result:
        result["ring_fit"] = fit_ring(result["sizes"], result["ranks"])
        for size in result["sizes"]:
            print(f"  allreduce {size['bytes']:>10,} B  {size['median_s'] * 1e6:>10.1f} us  "
                  f"{size['algorithm_bandwidth_gb_s']:.3f} GB/s", flush=True)
    return {"name": "allreduce", **result}


def steps_row(quick: bool) -> dict:
    """Each model's step in one process with every core, and its projection over the assumed links."""
    models, rows = STEP_MODELS[:2] if quick else STEP_MODELS, []
    for model, batch in models:
        command = [sys.executable, str(HERE / "distributed" / "model_step.py"), model, "--batch", str(batch),
                   "--threads", str(os.cpu_count()), "--steps", "2" if batch <= 8 else "5"]
        result = run_child(command, os.cpu_count(), timeout_s=300)
        if "step_s" in result:
            result["projection"] = projection(result)
            print(f"  step {model:<10} batch {batch:<4}{min(result['step_s']) * 1e3:>10.1f} ms  "
                  f"{result['parameters']:>12,} parameters", flush=True)
        else:
            result["model"] = model
            print(f"  step {model:<10} {result['error']}", flush=True)
        rows.append(result)
    print_projection(rows)
    return {"name": "steps", "links_assumed": list(LINKS), "models": rows}


def print_projection(rows: list) -> None:
    """The projection as docs/distributed.md shows it: efficiency c / (c + t) per link and rank count."""
    print("  projected efficiency (step / (step + ring all-reduce)), ranks " + " ".join(map(str, RANKS)))
    for row in rows:
        if "projection" in row:
            cells = {}
            for cell in row["projection"]["projected"]:
                cells.setdefault(cell["link"], []).append(f"{cell['efficiency']:.0%}")
            print(f"  {row['model']:<10}" + "  |  ".join(f"{link}: {' '.join(v)}" for link, v in cells.items()))


def versions() -> dict:
    """The versions that decide these numbers, read without importing the frameworks."""
    found = {}
    for package in ("numpy", "mpi4py", "mpich", "torch", "minicnn-framework"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def new_report(args) -> tuple[dict, Path]:
    from cpu_train_report import source_commit
    from gpu_report import cpu_model

    now = datetime.datetime.now(datetime.timezone.utc)
    host = socket.gethostname()
    report = {
        "benchmark": "data-parallel training on one machine: minicnn ranks vs one process vs PyTorch DDP (issue 18)",
        "date": now.isoformat(timespec="seconds"), "quick": args.quick,
        "machine": {"host": host, "platform": platform.platform(), "processor": cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "versions": versions(), "minicnn_commit": source_commit()},
        "launch": {"ranks": " ".join(launcher(2, not args.no_bind)) + " python ...",
                   "threads": "OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS set per process; "
                              "mc.set_num_threads / torch.set_num_threads (and 1 inter-op thread)"},
        "images_per_s": "global images of a timed epoch / its training seconds (rank 0's clock)",
        "load_average_start": os.getloadavg(), "rows": [], "targets": [], "complete": False,
    }
    name = f"distributed-{re.sub(r'[^a-z0-9]+', '-', host.lower()).strip('-')}-{now.date()}.json"
    path = args.out if args.out and args.out.suffix == ".json" else (args.out or HERE / "results") / name
    return report, path


def write_report(report: dict, path: Path) -> None:
    from gpu_report import write_json

    report["targets"] = [{"row": row["name"], **target} for row in report["rows"] for target in row.get("ratios", [])]
    write_json(report, path)


def main(args) -> dict:
    started = time.perf_counter()
    rounds, epochs = args.rounds or (1 if args.quick else 5), args.epochs or (1 if args.quick else 4)
    report, path = new_report(args)
    print(f"{report['machine']['processor']}, {report['machine']['cores']} cores; load average "
          f"{report['load_average_start'][0]:.2f}; results: {path}")
    for name in [n for n in ALL_ROWS if n in (args.only or ALL_ROWS)]:
        if name in WORKLOADS:
            workload = WORKLOADS[name]
            if args.quick:
                workload = Workload(workload.model, workload.batch, max(2, workload.steps // 10), workload.image)
            row = throughput_row(workload, rounds, epochs, not args.no_bind, args.data_dir)
            print(f"{name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in row["images_per_s"].items() if v) + " img/s; "
                  + "; ".join(f"{r['ratio']} = {r['value']:.2f} (>= {r['at_least']}: {'met' if r['met'] else 'MISSED'})"
                              for r in row["ratios"] if r["value"] is not None))
        elif name == "allreduce":
            row = allreduce_row(not args.no_bind, args.quick)
        else:
            row = steps_row(args.quick)
        report["rows"].append(row)
        write_report(report, path)
    report.update(complete=True, seconds=time.perf_counter() - started, load_average_end=os.getloadavg())
    write_report(report, path)
    print(f"{report['seconds']:.0f} s; wrote {path}")
    return report


if __name__ == "__main__":
    main(parse_args())
