"""The scaling model of docs/distributed.md: what one all-reduce of the gradients costs as ranks are
added, from the ring all-reduce bound (Patarasuk & Yuan 2009), and how much of a step it takes.

Ring all-reduce of n bytes over R ranks, each link of latency a seconds and bandwidth b bytes/s:
R - 1 reduce-scatter steps and R - 1 all-gather steps, each sending n / R bytes, so

    t(n, R) = 2 (R - 1) / R * n / b + 2 (R - 1) * a

minicnn all-reduces once per step, after backward (no overlap with it), so a rank whose own work
per step takes c seconds spends c + t per step: efficiency c / (c + t), speed-up R * c / (c + t)
over one rank at the same per-rank batch (the global batch grows with R).
"""

from __future__ import annotations

RANKS = (8, 16, 32, 64)
# Assumed, not measured here: typical one-way latencies of MPI over TCP on 10 Gb/s Ethernet, and over
# RDMA (InfiniBand or RoCE) on 100 Gb/s links; bandwidths are the links' line rates in bytes/s.
LINKS = (
    {"name": "10 Gb/s Ethernet (TCP)", "bandwidth_bytes_s": 10e9 / 8, "latency_s": 20e-6},
    {"name": "100 Gb/s InfiniBand/RoCE (RDMA)", "bandwidth_bytes_s": 100e9 / 8, "latency_s": 5e-6},
)


def ring_seconds(n_bytes: float, ranks: int, latency_s: float, bandwidth_bytes_s: float) -> float:
    """t(n, R) of the module's docstring; 0 for one rank."""
    return 2 * (ranks - 1) / ranks * n_bytes / bandwidth_bytes_s + 2 * (ranks - 1) * latency_s


def fit_ring(sizes: list[dict], ranks: int) -> dict:
    """Latency a and bandwidth b of the ring model from a measured all-reduce curve (allreduce.py's
    rows: bytes, median_s): a from the smallest message, where t = 2 (R - 1) a; b from the largest,
    once that latency is taken off."""
    smallest, largest = sizes[0], sizes[-1]
    latency = smallest["median_s"] / (2 * (ranks - 1))
    moving = largest["median_s"] - 2 * (ranks - 1) * latency
    bandwidth = 2 * (ranks - 1) / ranks * largest["bytes"] / moving
    return {"latency_s": latency, "bandwidth_bytes_s": bandwidth, "ranks": ranks,
            "from": f"latency: the {smallest['bytes']}-byte all-reduce / (2 (R-1)); bandwidth: the "
                    f"{largest['bytes']}-byte one, its latency taken off"}


def projection(step: dict, links=LINKS, ranks=RANKS) -> dict:
    """For one model (model_step.py's result: gradient_bytes, step_s), the projected all-reduce time,
    efficiency and speed-up at each number of ranks over each link."""
    compute = min(step["step_s"])
    rows = []
    for link in links:
        for count in ranks:
            seconds = ring_seconds(step["gradient_bytes"], count, link["latency_s"], link["bandwidth_bytes_s"])
            rows.append({"link": link["name"], "ranks": count, "allreduce_s": seconds,
                         "efficiency": compute / (compute + seconds), "speedup": count * compute / (compute + seconds)})
    return {"model": step["model"], "batch_per_rank": step["batch"], "parameters": step["parameters"],
            "gradient_bytes": step["gradient_bytes"], "step_s": compute, "projected": rows}
