"""What benchmarks/cpu_train.py writes: the machine, the printed table, the issue's targets and the JSON."""

from __future__ import annotations

import datetime
import os
import platform
import re
import socket
import subprocess
from pathlib import Path

import numpy as np

import minicnn as mc
from cpu_train_processes import PEAK_METHOD
from gpu_report import cpu_model, write_json
from gpu_timing import torch


def machine_info(threads: int) -> dict:
    """Host, processor, cores, the thread count asked for, NumPy's BLAS and PyTorch's threading."""
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    info = {"host": socket.gethostname(), "platform": platform.platform(), "processor": cpu_model(),
            "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)), "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "numpy_blas": {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)},
            "minicnn": mc.__version__, "minicnn_commit": source_commit(), "torch": None}
    try:
        import threadpoolctl

        info["threadpools"] = threadpoolctl.threadpool_info()
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    if torch is not None:
        info["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                         "interop_threads": torch.get_num_interop_threads(),
                         "mkldnn": torch.backends.mkldnn.is_available(),
                         "parallel_info": torch.__config__.parallel_info().strip().splitlines()}
    return info


def source_commit() -> str | None:
    """The git commit the measured minicnn was imported from ("+changes" when its minicnn/ or plugins/
    differ from it), or None outside a git checkout: which code a result file speaks for."""
    folder = Path(mc.__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True,
                                check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/minicnn",
                                  ":/plugins"], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changed else "")


def default_path(out: Path | None, host: str, date: datetime.date) -> Path:
    """--out as given when it names a .json file; else cpu-train-<host>-<date>.json inside --out
    or benchmarks/results/."""
    filename = f"cpu-train-{re.sub(r'[^a-z0-9]+', '-', host.lower()).strip('-')}-{date}.json"
    if out is None:
        return Path(__file__).parent / "results" / filename
    return out if out.suffix == ".json" else out / filename


def new_report(args, timing, dataset: dict) -> tuple[dict, Path]:
    """The JSON's head and where it goes; rows are appended as they are measured, `complete` set at the end."""
    now = datetime.datetime.now(datetime.timezone.utc)
    machine = machine_info(args.threads)
    report = {
        "benchmark": "minicnn vs PyTorch on the CPU, float32, same model, batch and threads, one run (issue 7)",
        "date": now.isoformat(timespec="seconds"), "quick": args.quick, "machine": machine,
        "load_average_start": os.getloadavg(), "dataset_for_processes": dataset,
        "timing": {"warmup_calls": timing.warmup, "windows": timing.windows, "least_window_s": timing.window_s,
                   "pause_before_window_s": timing.pause_s,
                   "calls_per_window": "as many as fitted in least_window_s in an untimed window after warm-up",
                   "order": "windows alternate: minicnn, torch, minicnn, torch...",
                   "reported": "median window, ms per call, and images/s = batch / that"},
        "ratio": "minicnn images/s / torch images/s (> 1: minicnn faster)",
        "peak_rss": PEAK_METHOD,
        "rows": [], "targets": [], "complete": False,
    }
    return report, default_path(args.out, machine["host"], now.date())


def targets(rows: list) -> list:
    """The issue's targets the run measured: what, the goal, the value and whether it was met."""
    found = []
    for row in rows:
        target = row.get("target")
        if target is None:
            continue
        if "ratio_at_least" in target:
            found.append({"row": row["name"], "goal": f"ratio >= {target['ratio_at_least']}", "value": row.get("ratio"),
                          "met": target["met"]})
        else:
            found.append({"row": row["name"], "goal": f"minicnn peak RSS <= {target['peak_rss_mb_at_most']} MB",
                          "value": row["minicnn"]["peak_rss_mb"], "met": target["met"]})
    return found


def write_report(report: dict, path: Path) -> None:
    """The targets summary brought up to date, then the whole file replaced."""
    report["targets"] = targets(report["rows"])
    write_json(report, path)


def print_header(report: dict, path: Path) -> None:
    machine, torch_info = report["machine"], report["machine"]["torch"]
    peer = f"torch {torch_info['version']}" if torch_info else "no PyTorch: minicnn alone"
    blas = machine["numpy_blas"].get("name", "BLAS unknown")
    print(f"{machine['processor']}, {machine['cores']} cores, {machine['threads']} threads; numpy {machine['numpy']} "
          f"({blas}); {peer}; load average {report['load_average_start'][0]:.2f}")
    print(f"results: {path} (rewritten after every row)\n")
    print(f"{'row':<20}{'minicnn img/s':>14}{'torch img/s':>13}{'ratio':>7}  {'target':<16}check")


def verdict(met) -> str:
    return "n/a" if met is None else "met" if met else "MISSED"


def check_text(check: dict | None) -> str:
    """The row's numerical check in a few words."""
    if check is None:
        return ""
    initial = check["initial_weights_rel_diff"]
    weights = "same weights" if initial == 0.0 else f"weights differ {initial:.1e}"
    if "loss_minicnn" in check:
        detail = (f"loss {check['loss_minicnn']:.5f} vs {check['loss_torch']:.5f} "
                  f"(|diff| {check['loss_abs_diff']:.1e}), weights after step {check['weights_after_step_rel_diff']:.1e}")
    else:
        detail = f"logits rel diff {check['logits_rel_diff']:.1e}"
    return f"{'agree' if check['agree'] else 'DISAGREE'}: {weights}, {detail}"


def print_row(row: dict) -> None:
    """One line per row (two for the processes), or its error."""
    if "error" in row or "skipped" in row:
        print(f"{row['name']:<20}{row.get('error') or 'skipped: ' + row['skipped']}")
    elif "timings" in row:
        timings = row["timings"]
        theirs = f"{timings['torch']['images_per_s']:>13,.0f}" if "torch" in timings else f"{'-':>13}"
        ratio = f"{row['ratio']:>7.2f}" if row["ratio"] is not None else f"{'-':>7}"
        target = f">={row['target']['ratio_at_least']}x {verdict(row['target']['met'])}"
        mine = timings["minicnn"]["images_per_s"]
        print(f"{row['name']:<20}{mine:>14,.0f}{theirs}{ratio}  {target:<16}{check_text(row.get('check'))}")
    elif row["name"] == "memory":
        print_memory(row)
    else:
        print_epoch(row)


def process_text(process: dict | None, value) -> str:
    """`value` for a child process that did its work, "failed" for one that did not, "-" for none."""
    if process is None:
        return "-"
    return "failed" if "error" in process else value


def imports_text(process: dict | None) -> str:
    return "-" if process is None else "+".join(name for name, done in process["imported"].items() if done) or "neither"


def print_memory(row: dict) -> None:
    mine, theirs = row["minicnn"], row.get("torch")
    peaks = [process_text(p, p and f"{p['peak_rss_mb']:.0f} MB") for p in (mine, theirs)]
    target = f"<={row['target']['peak_rss_mb_at_most']:.0f} MB {verdict(row['target']['met'])}"
    print(f"{'memory (peak RSS)':<20}{peaks[0]:>14}{peaks[1]:>13}{'-':>7}  {target:<16}"
          f"imported: {imports_text(mine)} / {imports_text(theirs)}")
    print(f"{'':<20}a LeNet-5 training process: minicnn train, {row['steps']} steps at batch {row['batch']} on "
          f"{row['dataset']}, then its test set" + ("; torch the same on random data" if theirs else ""))
    for who, process in (("minicnn", mine), ("torch", theirs)):
        if process is not None and "error" in process:
            print(f"{'':<20}! {who} child, exit {process['returncode']}: {process['error'][-400:]}")


def print_epoch(row: dict) -> None:
    mine, theirs = row["minicnn"], row.get("torch")
    metrics = mine.get("metrics") or dict.fromkeys(("images_per_second", "seconds", "test_accuracy"), float("nan"))
    rates = [process_text(mine, f"{metrics['images_per_second']:,.0f}"),
             f"{theirs['images_per_second']:,.0f}" if theirs else "-"]
    ratio = f"{row['ratio']:.2f}" if row.get("ratio") is not None else "-"
    print(f"{'epoch (MNIST)':<20}{rates[0]:>14}{rates[1]:>13}{ratio:>7}  {'(no target)':<16}"
          f"test accuracy {metrics['test_accuracy']:.2%}" + (f" vs {theirs['test_accuracy']:.2%}" if theirs else ""))
    loops = f"{metrics['seconds']:.1f} s" + (f" vs {theirs['seconds']:.1f} s" if theirs else "")
    print(f"{'':<20}training loop {loops}; whole minicnn train command {mine['seconds']:.1f} s "
          "(start, data, test, checkpoints)")
    if "error" in mine:
        print(f"{'':<20}! minicnn child, exit {mine['returncode']}: {mine['error'][-400:]}")
