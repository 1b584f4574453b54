"""One training run whose images/s benchmarks/distributed.py measures: minicnn through `mc.fit`, or
the same loop in PyTorch, in one process or as one rank of `mpiexec -n R` (PyTorch: DDP on gloo).

    python throughput.py minicnn|torch --model M --batch B --epochs E --threads T --data FOLDER [--port P]

FOLDER holds images.npy (N, C, H, W) uint8 and labels.npy (N,) int64, written by the driver so that
every process trains on the same samples; B is the global batch, and N / B steps make one epoch.
Under mpiexec (R > 1) each rank takes its np.array_split slice of every global batch of one
shared shuffle, as minicnn's loop does. Epoch 1 is the warm-up; the driver drops it.

Rank 0 prints one line, RESULT_MARK and then JSON: each epoch's seconds and global images/s,
and every rank's CPU affinity (whether mpiexec's -bind-to core took hold).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RESULT_MARK = "distributed-benchmark-result:"
# minicnn train's SGD (minicnn/plugin/builtin_optimizers.py and TrainConfig): Nesterov, so PyTorch's matches
LR, MOMENTUM, WEIGHT_DECAY = 0.03, 0.9, 5e-4


def launched_ranks() -> tuple[int, int]:
    """(rank, size) from the variables MPICH's Hydra launcher sets, (0, 1) when started alone."""
    return int(os.environ.get("PMI_RANK", 0)), int(os.environ.get("PMI_SIZE", 1))


def minicnn_run(args, images: np.ndarray, labels: np.ndarray) -> dict:
    """`mc.fit` over the arrays (normalised with their channel statistics, as fit does), with
    nn.fuse_conv_relu applied first, as `minicnn train` does; distributed=True under mpiexec."""
    import minicnn as mc

    mc.set_num_threads(args.threads)
    rank, size = launched_ranks()
    mc.manual_seed(0)
    model = mc.create_model(args.model)
    mc.nn.fuse_conv_relu(model)
    history = mc.fit(model, (images, labels), epochs=args.epochs, batch_size=args.batch, seed=0, progress=False,
                     distributed=size > 1)
    affinity = sorted(os.sched_getaffinity(0))
    if size > 1:
        import minicnn.distributed as dist

        affinities = dist.world().all_gather_object(affinity)
    else:
        affinities = [affinity]
    epochs = [{"seconds": e["seconds"], "images_per_second": e["images_per_second"]} for e in history]
    return {"epochs": epochs, "affinity_by_rank": affinities, "threads": mc.get_num_threads(), "ranks": size}


def torch_run(args, images: np.ndarray, labels: np.ndarray) -> dict:
    """minicnn's loop written for the PyTorch twin (twins.py, PyTorch's own initial weights): per step,
    this rank's slice normalised, forward, cross-entropy, the loss read, backward (DDP averages the
    gradients over equal slices), SGD step; an epoch's images/s counts the global batch."""
    import torch
    import torch.nn.functional as TF

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from twins import torch_twin

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    rank, size = launched_ranks()
    torch.manual_seed(0)
    model = torch_twin(args.model)
    if size > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=size)
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    mean, std = channel_statistics(images)
    model.train()
    epochs = []
    for epoch in range(1, args.epochs + 1):
        order = np.random.default_rng([0, epoch]).permutation(len(images))
        correct, started = 0, time.perf_counter()
        for start in range(0, len(order) - args.batch + 1, args.batch):
            mine = np.array_split(order[start:start + args.batch], size)[rank]
            x = torch.from_numpy((images[mine].astype(np.float32) * np.float32(1 / 255) - mean) / std)
            y = torch.from_numpy(labels[mine])
            logits = model(x)
            loss = TF.cross_entropy(logits, y)
            loss.item()
            correct += int((logits.argmax(1) == y).sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        epochs.append({"seconds": seconds, "images_per_second": len(order) // args.batch * args.batch / seconds})
    affinity = sorted(os.sched_getaffinity(0))
    if size > 1:
        affinities = [None] * size
        dist.all_gather_object(affinities, affinity)
        dist.barrier()
    else:
        affinities = [affinity]
    return {"epochs": epochs, "affinity_by_rank": affinities, "threads": torch.get_num_threads(), "ranks": size}


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images (N, C, H, W) in [0, 1] units, shaped (C, 1, 1) float32."""
    scaled = images.astype(np.float64) / 255
    shape = (-1, 1, 1)
    return (scaled.mean((0, 2, 3)).astype(np.float32).reshape(shape),
            scaled.std((0, 2, 3)).astype(np.float32).reshape(shape))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=["minicnn", "torch"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, required=True, help="the global batch")
    parser.add_argument("--epochs", type=int, required=True, help="epochs, the first being the warm-up")
    parser.add_argument("--threads", type=int, required=True, help="threads per process")
    parser.add_argument("--data", type=Path, required=True, help="folder with images.npy and labels.npy")
    parser.add_argument("--port", type=int, default=29500, help="PyTorch's rendezvous port on 127.0.0.1")
    args = parser.parse_args()
    images, labels = np.load(args.data / "images.npy"), np.load(args.data / "labels.npy")
    result = (minicnn_run if args.framework == "minicnn" else torch_run)(args, images, labels)
    if launched_ranks()[0] == 0:
        print(RESULT_MARK, json.dumps(result), flush=True)
    if args.framework == "torch" and launched_ranks()[1] > 1:
        # gloo's threads can abort the process as the interpreter tears down ("terminate called without
        # an active exception", MPICH then ends the job with status 15), after the work is done and
        # reported: leave without that teardown
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
