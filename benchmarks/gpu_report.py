"""What benchmarks/gpu.py writes: the machine, the issue's targets, the printed table and the JSON."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import re
import socket
from pathlib import Path

import numpy as np

import minicnn as mc
from gpu_timing import attempt, torch

TARGETS = {  # the goals, as a ratio against the first (fp32) peer: (kind, family or model) -> goal
    ("conv", "resnet"): {"pass": "forward_backward", "at_least": 0.5},
    ("conv", "vgg"): {"pass": "forward_backward", "at_least": 0.5},
    ("train", "lenet5"): {"pass": "step", "at_least": 1.0},
}


def machine_info(device: str) -> dict:
    """Host, CPU and versions; on CUDA also the card (name, memory, compute capability) and CUDA versions."""
    info = {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "minicnn": mc.__version__,
            "torch": torch.__version__ if torch is not None else None}
    if device == "cuda":
        gpu = attempt(gpu_info)
        info.update({"gpu_error": gpu["error"]} if "error" in gpu else gpu)
    return info


def gpu_info() -> dict:
    """GPU 0 as PyTorch and CuPy see it (either may be missing)."""
    info = {}
    if torch is not None and torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), torch_cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    with contextlib.suppress(ImportError):
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        info.update(gpu=name.decode() if isinstance(name, bytes) else name, cupy=cupy.__version__,
                    gpu_memory_gib=props["totalGlobalMem"] / 2**30, compute_capability=f"{props['major']}.{props['minor']}",
                    cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(), cuda_driver=cupy.cuda.runtime.driverGetVersion())
    return info


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def targets_for(row: dict, first_peer) -> None:
    """Add the issue's target to a row it applies to: ratio against the first (fp32) peer."""
    goal = TARGETS.get((row["kind"], row.get("family", row.get("model"))))
    if goal is None or first_peer is None:
        return
    ratio = row["ratios"].get(goal["pass"], {}).get(first_peer)
    row["target"] = {**goal, "peer": first_peer, "ratio": ratio, "met": None if ratio is None else ratio >= goal["at_least"]}


def write_json(report: dict, path: Path) -> None:
    """Replace the file whole (written beside it, then renamed), so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=1) + "\n")
    partial.replace(path)


def default_path(out: Path | None, machine: dict, device: str, date: datetime.date) -> Path:
    """--out as given when it names a .json file; else gpu-<card>-<date>.json (cpu-<host>-<date>.json)
    inside --out or benchmarks/results/."""
    name = machine.get("gpu", "unknown-gpu") if device == "cuda" else machine["host"]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    filename = f"{'gpu' if device == 'cuda' else 'cpu'}-{slug}-{date}.json"
    if out is None:
        return Path(__file__).parent / "results" / filename
    return out if out.suffix == ".json" else out / filename


def format_timing(timing: dict, width: int) -> str:
    return f"{timing['ms']:>{width}.3f}" if "ms" in timing else f"{'error' if 'error' in timing else '-':>{width}}"


def describe(row: dict) -> str:
    """The row's shapes in one line."""
    if row["kind"] == "conv":
        return f"x{tuple(row['x_shape'])} w{tuple(row['weight_shape'])} s{row['stride']} p{row['padding']}"
    if row["kind"] == "pool":
        return f"x{tuple(row['x_shape'])} {row['pool']} {row['kernel']}x{row['kernel']} s{row['stride']} p{row['padding']}"
    return f"batch {row['batch']} of {tuple(row['image'])}, {row['optimizer']}"


def agreement_text(row: dict) -> str:
    """The numerical check in a few words: the worst relative difference, or the losses."""
    agreement = row.get("agreement")
    if not agreement:
        return ""
    if "error" in agreement:
        return "check failed: " + agreement["error"][:120]
    if row["kind"] == "train":
        return (f"first loss {agreement['loss_minicnn']:.5f} vs torch {agreement['loss_torch']:.5f}, "
                f"state after one step rel diff {agreement['state_after_step']:.1e}")
    worst = max(v for k, v in agreement.items() if k in ("y", "grad_x", "grad_weight", "grad_bias"))
    tf32_note = f" (tf32 vs fp32 {agreement['tf32_y_vs_fp32']:.1e})" if "tf32_y_vs_fp32" in agreement else ""
    return f"max rel diff vs torch {worst:.1e}{tf32_note}"


def print_row(row: dict, peers) -> None:
    """A line naming the row, one line per pass (minicnn ms, each peer's ms and ratio), then each
    distinct error once, with the passes it stopped."""
    print(f"{row['name']}  {describe(row)}  {agreement_text(row)}")
    target, errors = row.get("target"), {}
    for pass_name, timings in row["timings"].items():
        line = f"    {pass_name:<17}{format_timing(timings['minicnn'], 12)}"
        for peer in peers:
            ratio = row["ratios"][pass_name].get(peer)
            line += format_timing(timings.get(peer, {}), 16) + (f"{ratio:>7.2f}" if ratio is not None else f"{'-':>7}")
        if target and target["pass"] == pass_name:
            verdict = "n/a" if target["met"] is None else "met" if target["met"] else "MISSED"
            line += f"   target >= {target['at_least']}x {target['peer']}: {verdict}"
        print(line)
        rates = [f"{who} {t['steps_per_s']:.1f} steps/s, {t['images_per_s']:,.0f} images/s"
                 for who, t in timings.items() if "steps_per_s" in t]
        if rates:
            print("      " + "; ".join(rates))
        for who, timing in timings.items():
            if "error" in timing:
                errors.setdefault((who, timing["error"][:300]), []).append(pass_name)
    for (who, error), passes in errors.items():
        print(f"      ! {who} ({', '.join(passes)}): {error}")


def print_header(title: str, peers) -> None:
    columns = "".join(f"{p + ' ms':>16}{'ratio':>7}" for p in peers)
    print(f"\n== {title}\n    {'pass':<17}{'minicnn ms':>12}{columns}")


def new_report(bench, machine: dict, now: datetime.datetime) -> dict:
    """The JSON's head; rows are appended as they are measured and `complete` set at the end."""
    return {
        "benchmark": "minicnn vs PyTorch, float32: conv2d passes, pooling, training steps",
        "date": now.isoformat(timespec="seconds"), "device": bench.device, "quick": bench.quick, "machine": machine,
        "peer": None if torch is None else {
            "framework": f"torch {torch.__version__}",
            "conv_and_training_peers": {name: {"tf32": on} for name, on in bench.peers.items()},
            "pool_peers": list(bench.pool_peers), "cudnn_benchmark": bench.device == "cuda"},
        "timing": {"warmup_calls": bench.warmup, "windows": bench.windows, "least_window_ms": bench.window_s * 1e3,
                   "reported": "median window, ms per call; device synchronized before each window's clock stops"},
        "ratio": "peer ms / minicnn ms (> 1: minicnn faster)",
        "targets": {f"{kind} {which}": goal for (kind, which), goal in TARGETS.items()},
        "rows": [], "complete": False,
    }
