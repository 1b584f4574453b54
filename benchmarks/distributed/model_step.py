"""One rank's compute per step, for the scaling model of docs/distributed.md: the training step of a
built-in model at its registered input size, in one process (benchmarks/distributed.py).

    python model_step.py MODEL --batch B --threads T [--steps S]

The step is what minicnn's loop does between two all-reduces: forward, cross-entropy, backward,
an SGD step (momentum 0.9) and zero_grad, on one fixed random batch (B, *input_size) float32,
nn.fuse_conv_relu applied as `minicnn train` does. One untimed step, then S timed ones. Prints
RESULT_MARK and then JSON: the parameters, the bytes one all-reduce of their gradients moves
(float32), and each timed step's seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

RESULT_MARK = "distributed-benchmark-result:"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one untimed step")
    args = parser.parse_args()

    import minicnn as mc
    import minicnn.functional as F
    from minicnn.plugin.manager import model_entry

    mc.set_num_threads(args.threads)
    mc.manual_seed(0)
    model = mc.create_model(args.model)
    mc.nn.fuse_conv_relu(model)
    model.train()
    shape = (args.batch, *model_entry(args.model).input_size)
    x = mc.tensor(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    y = mc.tensor(np.random.default_rng(1).integers(0, 10, args.batch).astype(np.int64))
    optimizer = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seconds = []
    for _ in range(args.steps + 1):
        started = time.perf_counter()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
    parameters = model.num_parameters()
    print(RESULT_MARK, json.dumps({"model": args.model, "batch": args.batch, "input": list(shape[1:]),
                                   "threads": args.threads, "parameters": parameters,
                                   "gradient_bytes": 4 * parameters, "untimed_s": seconds[0],
                                   "step_s": seconds[1:]}), flush=True)


if __name__ == "__main__":
    main()
