"""`minicnn tour`: the tutorial's worked examples, computed by minicnn."""

from __future__ import annotations

import numpy as np
from rich.table import Table

import minicnn as mc
import minicnn.functional as F
from minicnn.cli.app import app, console


@app.command()
def tour() -> None:
    """Run the CNN tutorial's worked examples with minicnn and show the results."""
    f, g = mc.tensor([0.0, 1, 2, -1, 3]), mc.tensor([1.0, 1, 0])
    table = Table(title="Convolution f * g, f = [0, 1, 2, -1, 3], g = [1, 1, 0]")
    table.add_column("mode")
    table.add_column("output size")
    table.add_column("values")
    for mode in ("valid", "same", "full"):
        out = F.convolve(f, g, mode)
        table.add_row(mode, str(out.shape[0]), str(out.numpy().tolist()))
    console.print(table)

    edge = mc.tensor([[-1.0, 0, 1]] * 3)
    for name, rows in (("thick bright bar", [10.0, 20, 10]), ("step from dark to bright", [10.0, 10, 50])):
        response = F.correlate(mc.tensor([rows] * 3), edge, "valid").item()
        console.print(f"vertical-edge kernel on a {name} {rows}: response {response:g}")

    grid = mc.tensor(np.arange(1.0, 17.0).reshape(1, 1, 4, 4))
    console.print("4x4 grid 1..16, 2x2 pooling with stride 2:")
    console.print(f"  max     {F.max_pool2d(grid, 2).numpy()[0, 0].tolist()}")
    console.print(f"  average {F.avg_pool2d(grid, 2).numpy()[0, 0].tolist()}")

    image = mc.tensor(np.random.default_rng(0).standard_normal((1, 3, 32, 32)))
    filters = mc.tensor(np.random.default_rng(1).standard_normal((6, 3, 5, 5)))
    console.print(
        f"a 32x32x3 image through 6 filters of 5x5x3: {tuple(F.conv2d(image, filters).shape[1:])} feature maps"
    )
    fully_connected = 100 * 100 * 1000
    console.print(
        f"100x100 image to 1,000 hidden units: {fully_connected:,} weights fully connected, "
        f"{3 * 3:,} for one shared 3x3 filter"
    )
