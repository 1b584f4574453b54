"""Write the table of docs/models.md from the model registry: `python docs/models_table.py`.

For every registered model: its plugin, default input size, parameters and multiply-adds of one
forward pass at that size (counted by `minicnn.tools.summary`), and the one-line idea it registered with.
"""

from __future__ import annotations

import sys

import minicnn as mc
from minicnn.plugin.manager import model_entry


def rows(pattern: str = "*") -> list[str]:
    lines = ["| model | plugin | input | parameters | multiply-adds | idea |", "|---|---|---|---:|---:|---|"]
    for name in mc.list_models(pattern):
        entry = model_entry(name)
        model = mc.create_model(name)
        summary = mc.summarize(model, entry.input_size)
        size = "x".join(map(str, entry.input_size))
        lines.append(
            f"| `{name}` | {entry.plugin} | {size} | {summary.parameters:,} | {summary.multiply_adds:,} | {entry.description} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(rows(sys.argv[1] if len(sys.argv) > 1 else "*")))
