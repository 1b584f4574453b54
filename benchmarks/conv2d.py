"""Time minicnn's conv2d forward + backward against PyTorch's on the CPU.

What is measured, per shape: one forward pass `y = conv2d(x, weight, bias)` and one backward pass
`y.backward(g)` that fills the gradients of x, weight and bias (g a fixed random array), in float32.
Each framework runs `--warmup` untimed passes, then `--repeats` timed ones; the median is reported
as milliseconds per forward+backward and as GFLOP/s, counting 2*N*C_out*oH*oW*C_in*kH*kW operations
for the forward and as many again for each of the two backward products (input and weight
gradients; bias ignored).

speedup = torch_ms / minicnn_ms: above 1 minicnn is faster, below 1 PyTorch is.

Both frameworks get the same thread count (--threads, default os.cpu_count()): torch through
torch.set_num_threads, NumPy's BLAS through the *_NUM_THREADS variables set before NumPy loads.
Before timing, the script compares both frameworks' output and gradients on the same inputs, so the
two timings are of the same computation. PyTorch is optional: without it only minicnn is timed.

    python benchmarks/conv2d.py [--repeats 15] [--out results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import time
from pathlib import Path

SHAPES = [
    # name, what it is, x shape (N, C, H, W), weight shape (C_out, C_in, kH, kW), padding
    ("lenet5-c1", "LeNet-5 C1: 1->6 channels, 5x5, on 32x32, batch 128", (128, 1, 32, 32), (6, 1, 5, 5), 0),
    ("lenet5-c3", "LeNet-5 C3: 6->16 channels, 5x5, on 14x14, batch 128", (128, 6, 14, 14), (16, 6, 5, 5), 0),
    ("resnet-3x3", "ResNet-18 conv2_x: 64->64 channels, 3x3 pad 1, on 56x56, batch 16",
     (16, 64, 56, 56), (64, 64, 3, 3), 1),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed passes per shape and framework (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes first")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both frameworks")
    parser.add_argument("--out", type=Path, help="JSON file (default benchmarks/results/conv2d-cpu-<host>-<date>.json)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)  # read once, when the BLAS library loads

import numpy as np  # noqa: E402

import minicnn as mc  # noqa: E402
import minicnn.functional as F  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def output_size(x_shape, w_shape, padding) -> tuple[int, int]:
    """(oH, oW) of a stride-1 convolution."""
    return x_shape[2] + 2 * padding - w_shape[2] + 1, x_shape[3] + 2 * padding - w_shape[3] + 1


def conv_flops(x_shape, w_shape, padding) -> int:
    """Floating-point operations of forward + backward (x and weight gradients)."""
    oh, ow = output_size(x_shape, w_shape, padding)
    c_out, c_in, kh, kw = w_shape
    return 3 * 2 * x_shape[0] * c_out * oh * ow * c_in * kh * kw


def minicnn_step(x, weight, bias, g, padding):
    """One forward + backward; returns the output and the three gradients as NumPy arrays."""
    x, weight, bias = (mc.tensor(a, requires_grad=True) for a in (x, weight, bias))
    y = F.conv2d(x, weight, bias, padding=padding)
    y.backward(g)
    return y.numpy(), x.grad.numpy(), weight.grad.numpy(), bias.grad.numpy()


def torch_step(x, weight, bias, g, padding):
    x, weight, bias = (torch.from_numpy(a).requires_grad_() for a in (x, weight, bias))
    y = torch.nn.functional.conv2d(x, weight, bias, padding=padding)
    y.backward(torch.from_numpy(g))
    return y.detach().numpy(), x.grad.numpy(), weight.grad.numpy(), bias.grad.numpy()


def time_step(step, arrays, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each timed pass. One framework's passes run back to back, never interleaved
    with the other's: BLAS and OpenMP worker threads keep spinning for a while after a call, and on a
    machine with few cores they would steal time from the other framework's threads."""
    for _ in range(warmup):
        step(*arrays)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(*arrays)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def machine_info(threads: int) -> dict:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)},
    }
    try:
        import threadpoolctl

        info["threadpools"] = threadpoolctl.threadpool_info()
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def run_shape(name, description, x_shape, w_shape, padding, args) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    weight = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    bias = rng.standard_normal(w_shape[0], dtype=np.float32)
    g = rng.standard_normal((x_shape[0], w_shape[0], *output_size(x_shape, w_shape, padding)), dtype=np.float32)
    arrays = (x, weight, bias, g, padding)
    flops = conv_flops(x_shape, w_shape, padding)

    result = {"name": name, "description": description, "x_shape": x_shape, "weight_shape": w_shape,
              "padding": padding, "stride": 1, "dtype": "float32", "gflop_per_step": flops / 1e9}
    steps = {"minicnn": minicnn_step}
    if torch is not None:
        steps["torch"] = torch_step
        result["agreement"] = {
            what: {"max_abs_diff": float(np.abs(mine - theirs).max()), "max_abs_torch": float(np.abs(theirs).max())}
            for what, mine, theirs in zip(("y", "grad_x", "grad_weight", "grad_bias"),
                                          minicnn_step(*arrays), torch_step(*arrays))
        }
    for framework, step in steps.items():
        times = time_step(step, arrays, args.warmup, args.repeats)
        ms = statistics.median(times)
        result[framework] = {"median_ms": ms, "gflops": flops / ms / 1e6, "times_ms": times}
    if torch is not None:
        result["speedup_vs_torch"] = result["torch"]["median_ms"] / result["minicnn"]["median_ms"]
    return result


def print_table(results) -> None:
    header = (f"{'shape':<12} {'GFLOP':>6} {'minicnn ms':>11} {'GFLOP/s':>8} {'torch ms':>9} {'GFLOP/s':>8} "
              f"{'speedup':>8}  max abs diff (of max |torch|)")
    print(header)
    print("-" * len(header))
    for r in results:
        line = f"{r['name']:<12} {r['gflop_per_step']:>6.2f} {r['minicnn']['median_ms']:>11.1f} {r['minicnn']['gflops']:>8.1f}"
        if "torch" in r:
            worst = max(r["agreement"].values(), key=lambda a: a["max_abs_diff"] / a["max_abs_torch"])
            line += (f" {r['torch']['median_ms']:>9.1f} {r['torch']['gflops']:>8.1f} {r['speedup_vs_torch']:>8.2f}"
                     f"  {worst['max_abs_diff']:.1e} (of {worst['max_abs_torch']:.1e})")
        print(line)
    print("speedup = torch ms / minicnn ms (>1: minicnn faster). Diff: max |minicnn - torch| over the output and "
          "the three gradients, for whichever is worst relative to its largest |torch| value")


def main(args) -> None:
    if torch is not None:
        torch.set_num_threads(args.threads)
    now = datetime.datetime.now(datetime.timezone.utc)
    report = {
        "benchmark": "conv2d forward+backward (grads of x, weight, bias), float32, CPU",
        "date": now.isoformat(timespec="seconds"),
        "machine": machine_info(args.threads),
        "minicnn": mc.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "results": [run_shape(*shape, args) for shape in SHAPES],
    }
    print_table(report["results"])
    out = args.out or Path(__file__).parent / "results" / f"conv2d-cpu-{socket.gethostname()}-{now.date()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(ARGS)
