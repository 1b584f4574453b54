"""minicnn against PyTorch on one device: conv2d passes, pooling, and whole training steps.

    python benchmarks/gpu.py [--device cuda|cpu] [--quick] [--out FILE_OR_FOLDER] [--time-budget S]

What is timed, float32 throughout, both frameworks on the same device, inputs and run:
- conv2d on LeNet, AlexNet, VGG, ResNet and Inception layer shapes, each pass on its own:
  forward; backward to the input only (the graph built with only x requiring grad, then
  `y.backward(g, retain_graph=True)` repeated); backward to the weight only (only the weight
  requiring grad); and forward + backward to x, weight and bias together.
- max and average pooling, forward and forward + backward.
- training steps (forward, cross-entropy, backward, SGD with momentum 0.9) of LeNet-5 and
  ResNet-20, minicnn's registered models against the PyTorch twins of twins.py, from the same weights.

The peer on CUDA is PyTorch with cuDNN (autotuned: cudnn.benchmark=True), measured twice:
"cudnn-fp32", TF32 off for cuDNN and cuBLAS (what minicnn computes: IEEE float32), and
"cudnn-tf32", TF32 on for both. PyTorch's pooling does not use cuDNN or TF32, so pooling is measured
once ("torch"). On the CPU the peer is PyTorch on the CPU ("torch-cpu"); without PyTorch only
minicnn is timed and the peer is null.

Timing (gpu_timing.py): warm-up calls, then --windows timed windows of at least --window-ms
each, the device synchronized before each window's clock stops; the median window's milliseconds per
call is reported. ratio = peer ms / minicnn ms: above 1 minicnn is faster, 0.5 means it takes twice
as long. The issue's targets (gpu_report.py) are such ratios against the fp32 peer.

Checked once per shape before timing: the output and every gradient against PyTorch's fp32 result,
as max |minicnn - torch| / max |torch|; on CUDA also cuDNN-tf32's output against its fp32 one, which
shows the TF32 switch took effect. Anything that raises is recorded in its row and the run goes on;
the JSON is rewritten after every row, so a run stopped early still leaves what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import minicnn as mc
import minicnn.functional as F
from gpu_report import default_path, machine_info, new_report, print_header, print_row, targets_for, write_json
from gpu_timing import TF, Bench, attempt, ratios, relative_diff, release_memory, tf32, torch


@dataclass(frozen=True)
class Conv:
    """x: (N, C_in, H, W), weight: (C_out, C_in, kH, kW) -> (N, C_out, oH, oW)."""

    name: str
    family: str
    x: tuple
    w: tuple
    stride: int = 1
    padding: int = 0
    quick: bool = False


@dataclass(frozen=True)
class Pool:
    """x: (N, C, H, W) -> (N, C, oH, oW), oH = floor((H + 2p - k) / s) + 1."""

    name: str
    kind: str  # "max" or "avg"
    x: tuple
    kernel: int
    stride: int
    padding: int = 0
    quick: bool = False


@dataclass(frozen=True)
class Train:
    """One SGD step of a registered model on a fixed random batch of (batch, *image) images."""

    model: str
    batch: int
    image: tuple
    quick: bool = False

    @property
    def name(self) -> str:
        return f"{self.model}-b{self.batch}"


CONVS = [
    Conv("lenet5-c1", "lenet", (128, 1, 28, 28), (6, 1, 5, 5), padding=2, quick=True),
    Conv("lenet5-c3", "lenet", (128, 6, 14, 14), (16, 6, 5, 5), quick=True),
    Conv("alexnet-conv1", "alexnet", (32, 3, 224, 224), (64, 3, 11, 11), stride=4, padding=2, quick=True),
    Conv("alexnet-conv2", "alexnet", (32, 64, 27, 27), (192, 64, 5, 5), padding=2),
    Conv("alexnet-conv3", "alexnet", (32, 192, 13, 13), (384, 192, 3, 3), padding=1),
    Conv("vgg-conv1_2", "vgg", (32, 64, 224, 224), (64, 64, 3, 3), padding=1),
    Conv("vgg-conv3_2", "vgg", (32, 256, 56, 56), (256, 256, 3, 3), padding=1),
    Conv("resnet-stem-7x7s2", "resnet", (32, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3),
    Conv("resnet-3x3", "resnet", (32, 64, 56, 56), (64, 64, 3, 3), padding=1, quick=True),
    Conv("resnet-3x3s2", "resnet", (32, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1),
    Conv("resnet-1x1", "resnet", (32, 256, 56, 56), (64, 256, 1, 1)),
    Conv("inception-1x1", "inception", (32, 192, 28, 28), (64, 192, 1, 1)),
    Conv("inception-3x3", "inception", (32, 96, 28, 28), (128, 96, 3, 3), padding=1),
    Conv("inception-5x5", "inception", (32, 16, 28, 28), (32, 16, 5, 5), padding=2, quick=True),
]
POOLS = [
    Pool("lenet-max-2x2s2", "max", (128, 6, 28, 28), 2, 2, quick=True),
    Pool("vgg-max-2x2s2", "max", (32, 64, 224, 224), 2, 2),
    Pool("alexnet-max-3x3s2", "max", (32, 64, 55, 55), 3, 2),
    Pool("resnet-max-3x3s2p1", "max", (32, 64, 112, 112), 3, 2, 1, quick=True),
    Pool("inception-max-3x3s1p1", "max", (32, 192, 28, 28), 3, 1, 1),
    Pool("avg-2x2s2", "avg", (32, 64, 112, 112), 2, 2, quick=True),
    Pool("googlenet-aux-avg-5x5s3", "avg", (32, 512, 14, 14), 5, 3),
]
TRAINS = [
    Train("lenet5", 64, (1, 28, 28), quick=True),
    Train("lenet5", 128, (1, 28, 28)),
    Train("resnet20", 128, (3, 32, 32), quick=True),
]
QUICK_BATCH = {"conv": 4, "pool": 4, "train": 8}
CONV_PASSES = ("forward", "backward_input", "backward_weight", "forward_backward")
POOL_PASSES = ("forward", "forward_backward")
LEARNING_RATE = 0.01


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true",
                        help=f"a subset of the rows, at batch {QUICK_BATCH['conv']} (training {QUICK_BATCH['train']})")
    parser.add_argument("--out", type=Path, help="a .json file, or a folder for the default name "
                        "(default benchmarks/results/gpu-<card>-<date>.json, on the CPU cpu-<host>-<date>.json)")
    parser.add_argument("--time-budget", type=float, help="seconds; rows not started by then are recorded as skipped")
    parser.add_argument("--windows", type=int, help="timed windows per measurement (default 5, 3 with --quick)")
    parser.add_argument("--window-ms", type=float, help="least milliseconds per window (default 50, 20 with --quick)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- conv2d

def conv_call(api, pass_name: str, arrays, case: Conv):
    """A no-argument callable running one pass of conv2d. x: (N, C_in, H, W), weight:
    (C_out, C_in, kH, kW), bias: (C_out,), g: (N, C_out, oH, oW). The backward passes alone run
    through one retained graph whose inputs require grad only where that pass needs it."""
    needs = {"forward": "", "backward_input": "x", "backward_weight": "w", "forward_backward": "xwb"}[pass_name]
    x, w, b = (api.tensor(a, name in needs) for name, a in zip("xwb", arrays[:3]))
    g = api.tensor(arrays[3])

    def forward():
        return api.conv2d(x, w, b, case.stride, case.padding)

    def clear():
        x.grad = w.grad = b.grad = None

    if pass_name == "forward":
        return forward
    if pass_name == "forward_backward":
        return lambda: (forward().backward(g), clear())
    y = forward()
    return lambda: (y.backward(g, retain_graph=True), clear())


def conv_results(api, arrays, case: Conv) -> list:
    """Output and the gradients of x, weight and bias as NumPy arrays."""
    x, w, b = (api.tensor(a, True) for a in arrays[:3])
    y = api.conv2d(x, w, b, case.stride, case.padding)
    y.backward(api.tensor(arrays[3]))
    return [api.numpy(t) for t in (y, x.grad, w.grad, b.grad)]


def conv_row(case: Conv, bench: Bench) -> dict:
    """Every conv pass of one shape, timed in each framework, after the numerical check."""
    x_shape = (QUICK_BATCH["conv"], *case.x[1:]) if bench.quick else case.x
    oh, ow = ((size + 2 * case.padding - k) // case.stride + 1 for size, k in zip(x_shape[2:], case.w[2:]))
    rng = np.random.default_rng(0)
    arrays = (
        rng.standard_normal(x_shape, dtype=np.float32),
        (rng.standard_normal(case.w) / np.sqrt(np.prod(case.w[1:]))).astype(np.float32),
        rng.standard_normal(case.w[0], dtype=np.float32),
        rng.standard_normal((x_shape[0], case.w[0], oh, ow), dtype=np.float32),
    )
    gflop = 2 * x_shape[0] * case.w[0] * oh * ow * int(np.prod(case.w[1:])) / 1e9
    row = {"kind": "conv", "name": case.name, "family": case.family, "x_shape": x_shape, "weight_shape": case.w,
           "stride": case.stride, "padding": case.padding, "output_shape": (x_shape[0], case.w[0], oh, ow),
           "gflop_forward": gflop, "timings": {}, "ratios": {}}
    if bench.torch is not None:
        row["agreement"] = attempt(lambda: conv_agreement(bench, arrays, case))
    for pass_name in CONV_PASSES:
        flops = gflop * (3 if pass_name == "forward_backward" else 1)
        timings = {"minicnn": attempt(lambda: bench.time_ms(conv_call(bench.mine, pass_name, arrays, case)))}
        for peer, tf32_on in bench.peers.items():
            with tf32(tf32_on):
                timings[peer] = attempt(lambda: bench.time_ms(conv_call(bench.torch, pass_name, arrays, case)))
        for timing in timings.values():
            if "ms" in timing:
                timing["tflops"] = flops / timing["ms"]
        row["timings"][pass_name], row["ratios"][pass_name] = timings, ratios(timings, bench.peers)
    return row


def conv_agreement(bench: Bench, arrays, case: Conv) -> dict:
    """minicnn's output and gradients against PyTorch's in fp32, and on CUDA tf32's output against fp32's."""
    first = next(iter(bench.peers.values()))
    with tf32(first):
        reference = conv_results(bench.torch, arrays, case)
    agreement = {name: relative_diff(mine, theirs) for name, mine, theirs in
                 zip(("y", "grad_x", "grad_weight", "grad_bias"), conv_results(bench.mine, arrays, case), reference)}
    if "cudnn-tf32" in bench.peers:
        with tf32(True):
            agreement["tf32_y_vs_fp32"] = relative_diff(conv_results(bench.torch, arrays, case)[0], reference[0])
    return agreement


# ---------------------------------------------------------------- pooling

def pool_call(api, pass_name: str, arrays, case: Pool):
    """A no-argument callable: pooling forward, or forward + backward. x: (N, C, H, W), g: (N, C, oH, oW)."""
    x, g = api.tensor(arrays[0], pass_name != "forward"), api.tensor(arrays[1])
    pool = api.max_pool2d if case.kind == "max" else api.avg_pool2d

    def forward():
        return pool(x, case.kernel, case.stride, case.padding)

    if pass_name == "forward":
        return forward

    def step():
        forward().backward(g)
        x.grad = None

    return step


def pool_results(api, arrays, case: Pool) -> list:
    """Output and input gradient as NumPy arrays."""
    x = api.tensor(arrays[0], True)
    y = (api.max_pool2d if case.kind == "max" else api.avg_pool2d)(x, case.kernel, case.stride, case.padding)
    y.backward(api.tensor(arrays[1]))
    return [api.numpy(y), api.numpy(x.grad)]


def pool_agreement(bench: Bench, arrays, case: Pool) -> dict:
    """minicnn's output and input gradient against PyTorch's."""
    mine, theirs = pool_results(bench.mine, arrays, case), pool_results(bench.torch, arrays, case)
    return {"y": relative_diff(mine[0], theirs[0]), "grad_x": relative_diff(mine[1], theirs[1])}


def pool_row(case: Pool, bench: Bench) -> dict:
    """Pooling forward and forward + backward of one shape, after the numerical check."""
    x_shape = (QUICK_BATCH["pool"], *case.x[1:]) if bench.quick else case.x
    out = tuple((size + 2 * case.padding - case.kernel) // case.stride + 1 for size in x_shape[2:])
    rng = np.random.default_rng(0)
    arrays = (rng.standard_normal(x_shape, dtype=np.float32), rng.standard_normal((*x_shape[:2], *out), dtype=np.float32))
    row = {"kind": "pool", "name": case.name, "pool": case.kind, "x_shape": x_shape, "kernel": case.kernel,
           "stride": case.stride, "padding": case.padding, "output_shape": (*x_shape[:2], *out), "timings": {}, "ratios": {}}
    if bench.torch is not None:
        row["agreement"] = attempt(lambda: pool_agreement(bench, arrays, case))
    for pass_name in POOL_PASSES:
        timings = {"minicnn": attempt(lambda: bench.time_ms(pool_call(bench.mine, pass_name, arrays, case)))}
        for peer, tf32_on in bench.pool_peers.items():
            with tf32(tf32_on):
                timings[peer] = attempt(lambda: bench.time_ms(pool_call(bench.torch, pass_name, arrays, case)))
        row["timings"][pass_name], row["ratios"][pass_name] = timings, ratios(timings, bench.pool_peers)
    return row


# ---------------------------------------------------------------- training steps

def minicnn_trainer(case: Train, state: dict, images, labels, device):
    """(step, state) for minicnn: step() runs one SGD step on images (batch, C, H, W) float32 and
    labels (batch,) int64 and returns the loss; state() is the model's state_dict as NumPy arrays."""
    model = mc.create_model(case.model)
    model.load_state_dict(state)
    model.to(device).train()
    mc.nn.fuse_conv_relu(model)  # as `minicnn train` does: ReLU in the convolution's epilogue
    optimizer = mc.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)
    x, y = mc.tensor(images, device=device), mc.tensor(labels, device=device)

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step, lambda: model.state_dict()


def torch_trainer(case: Train, state: dict, images, labels, device):
    """(step, state) for the PyTorch twin, as minicnn_trainer; torch.optim.SGD with its defaults."""
    from twins import load_minicnn_state, torch_twin  # needs PyTorch, which this script treats as optional

    model = load_minicnn_state(torch_twin(case.model), state)
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)
    x, y = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = TF.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step, lambda: {name: value.detach().cpu().numpy() for name, value in model.state_dict().items()}


def train_row(case: Train, bench: Bench) -> dict:
    """Steps per second of each framework on one fixed batch (data loading is not timed)."""
    batch = QUICK_BATCH["train"] if bench.quick else case.batch
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, *case.image), dtype=np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int64)
    mc.manual_seed(0)
    state = mc.create_model(case.model).state_dict()
    row = {"kind": "train", "name": f"{case.model}-b{batch}", "model": case.model, "batch": batch, "image": case.image,
           "optimizer": f"SGD lr={LEARNING_RATE} momentum=0.9", "loss": "cross_entropy",
           "minicnn_model": "nn.fuse_conv_relu applied, as minicnn train does", "timings": {}, "ratios": {}}
    steps = {"minicnn": attempt(lambda: minicnn_trainer(case, state, images, labels, bench.device))}
    if bench.torch is not None:
        steps["torch"] = attempt(lambda: torch_trainer(case, state, images, labels, bench.device))
        row["agreement"] = attempt(lambda: train_agreement(steps, bench))
    timings = {}
    for name, tf32_on in {"minicnn": None, **bench.peers}.items():
        trainer = steps["minicnn" if name == "minicnn" else "torch"]
        if isinstance(trainer, dict):  # building it failed: its error stands for every timing
            timings[name] = trainer
            continue
        with tf32(tf32_on):
            timings[name] = attempt(lambda: bench.time_ms(trainer[0]))
        if "ms" in timings[name]:
            timings[name].update(steps_per_s=1e3 / timings[name]["ms"], images_per_s=batch * 1e3 / timings[name]["ms"])
    row["timings"]["step"], row["ratios"]["step"] = timings, ratios(timings, bench.peers)
    return row


def train_agreement(steps: dict, bench: Bench) -> dict:
    """One step of each from the same weights on the same batch: the losses, and the largest
    difference of any parameter or buffer afterwards relative to the largest value of any of them
    (a per-tensor ratio would blow up float32 rounding in batch-norm biases that start at zero)."""
    if any(isinstance(s, dict) for s in steps.values()):
        raise RuntimeError("a trainer could not be built; see the timings")
    with tf32(next(iter(bench.peers.values()))):
        losses = {name: float(step().item()) for name, (step, _) in steps.items()}
    mine, theirs = steps["minicnn"][1](), steps["torch"][1]()
    floats = [k for k in theirs if theirs[k].dtype.kind == "f"]
    state_diff = max(float(np.abs(mine[k] - theirs[k]).max()) for k in floats) / max(
        float(np.abs(theirs[k]).max()) for k in floats)
    return {"loss_minicnn": losses["minicnn"], "loss_torch": losses["torch"], "state_after_step": state_diff}


def run_case(case, run, bench: Bench) -> dict:
    """One row: measured, or recorded as skipped once the time budget is spent, or as the error."""
    if bench.out_of_time():
        return {"name": case.name, "skipped": "time budget used up"}
    started = time.perf_counter()
    row = attempt(lambda: run(case, bench))
    row.setdefault("name", case.name)
    row["seconds"] = time.perf_counter() - started
    release_memory()
    return row


def main(args) -> dict:
    """Every section's rows in turn, each printed and added to the JSON as soon as it is measured."""
    started = time.perf_counter()
    bench = Bench(args)
    if torch is not None and bench.device == "cuda":
        torch.backends.cudnn.benchmark = True  # cuDNN at its best: each shape's fastest algorithm
    now = datetime.datetime.now(datetime.timezone.utc)
    machine = machine_info(bench.device)
    path = default_path(args.out, machine, bench.device, now.date())
    report = new_report(bench, machine, now)
    print(f"results: {path} (rewritten after every row)")
    sections = [("conv2d", CONVS, conv_row, bench.peers), ("pooling", POOLS, pool_row, bench.pool_peers),
                ("training steps (ms per step)", TRAINS, train_row, bench.peers)]
    for title, cases, run, peers in sections:
        print_header(title, peers)
        for case in (c for c in cases if c.quick or not bench.quick):
            row = run_case(case, run, bench)
            if "kind" in row:
                targets_for(row, next(iter(bench.peers), None))
                print_row(row, peers)
            else:
                print(f"{row['name']}: {row.get('skipped') or row.get('error')}")
            report["rows"].append(row)
            write_json(report, path)
    report.update(complete=True, seconds=time.perf_counter() - started)
    write_json(report, path)
    print(f"\nratio = peer ms / minicnn ms (>1: minicnn faster); {report['seconds']:.0f} s; wrote {path}")
    return report


if __name__ == "__main__":
    main(parse_args())
