"""Pictures of what a network does: feature maps, filters and training curves, as PNG files.

A convolution layer's feature map is bright where the image matches one of its filters, so drawing
the maps of one image beside the filters shows what each filter looks for. The arrays come from
plain NumPy (`feature_maps`, `tile`); only drawing needs matplotlib, an optional extra
(`pip install "minicnn-framework[plot]"`, or `pip install -e ".[plot]"` in a source checkout), imported
when a picture is drawn and never by `import minicnn`.
Figures are drawn with matplotlib's object API on an Agg canvas, so no global pyplot state or GUI
backend is touched.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np

from minicnn import nn
from minicnn.autograd import no_grad, tensor
from minicnn.distribution import install_command

DPI = 100
GAP_COLOUR = (0.62, 0.72, 0.86)   # the lines between tiles, unlike any grey a map can take
LABELLED_TILES = 64               # number the tiles when there are at most this many
CURVES_FILE = "curves.png"


class MatplotlibMissingError(RuntimeError):
    """Drawing was asked for but matplotlib is not installed."""


def require_matplotlib(user: str = "minicnn.tools.pictures") -> None:
    """Raise MatplotlibMissingError, naming `user` and the install command, when matplotlib is missing."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise MatplotlibMissingError(f"{user} needs matplotlib: install it with {install_command('plot')}") from None


def _figure(width: float, height: float):
    """A matplotlib Figure of width x height inches on its own Agg canvas (no pyplot)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


# -- arrays -----------------------------------------------------------------------------------------


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """(dotted name, layer) of every Conv2d in `model`, in registration order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def feature_maps(model: nn.Module, image) -> dict[str, np.ndarray]:
    """The output of every Conv2d for one image, in the order the layers ran.

    image: (C, H, W) or (1, C, H, W), normalised as the model's training data was.
    Returns {dotted layer name: (out_channels, oH, oW) float32 array}. A layer fused with the ReLU
    after it (`nn.fuse_conv_relu`, `conv.activation == "relu"`) gives its output after that ReLU.
    The model runs in eval mode without gradients; its modes and hooks are restored afterwards.
    """
    batch = np.asarray(image, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[0] != 1:
        raise ValueError(f"feature_maps: give one image (C, H, W) or (1, C, H, W), got shape {batch.shape}")
    maps = {}

    def keep(name):
        def hook(module, inputs, output):
            maps[name] = output.numpy()[0].astype(np.float32)
        return hook

    handles = [layer.register_forward_hook(keep(name)) for name, layer in conv_layers(model)]
    if not handles:
        raise ValueError(f"feature_maps: {type(model).__name__} has no Conv2d layer")
    parameter = next(model.parameters(), None)
    try:
        with model.evaluating(), no_grad():
            model(tensor(batch, device=parameter.device if parameter is not None else "cpu"))
    finally:
        for handle in handles:
            handle.remove()
    return maps


def scale_each(arrays: np.ndarray) -> np.ndarray:
    """(n, ...) -> float32 (n, ...) with each arrays[i] stretched to [0, 1] on its own range
    (a constant array becomes 0), so a weak map and a strong one are both visible."""
    arrays = np.asarray(arrays, dtype=np.float32)
    axes = tuple(range(1, arrays.ndim))
    low, high = arrays.min(axis=axes, keepdims=True), arrays.max(axis=axes, keepdims=True)
    span = high - low
    return np.where(span > 0, (arrays - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


def grid_columns(count: int, height: int = 1, width: int = 1) -> int:
    """Columns of a near-square grid of `count` tiles of height x width."""
    return max(1, min(count, math.ceil(math.sqrt(count * height / width))))


def tile(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Lay images out in a grid, row by row, one pixel of GAP_COLOUR between them.

    images: (n, h, w) grey or (n, h, w, 3) RGB, values in [0, 1].
    Returns an RGB mosaic (rows*(h+1)-1, columns*(w+1)-1, 3) in [0, 1]; unused cells are white.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"tile: images must be (n, h, w) or (n, h, w, 3), got shape {images.shape}")
    count, height, width, _ = images.shape
    columns = columns or grid_columns(count, height, width)
    rows = math.ceil(count / columns)
    mosaic = np.empty((rows * (height + 1) - 1, columns * (width + 1) - 1, 3), dtype=np.float32)
    mosaic[...] = GAP_COLOUR
    for index in range(rows * columns):
        top, left = (index // columns) * (height + 1), (index % columns) * (width + 1)
        mosaic[top:top + height, left:left + width] = images[index] if index < count else 1.0
    return mosaic


# -- pictures ---------------------------------------------------------------------------------------


def _enlarge(tiles: np.ndarray) -> np.ndarray:
    """Tiles (n, h, w[, 3]) under 24 pixels a side (a 5x5 kernel) repeated pixel by pixel to about
    that size, so the one-pixel gaps of the mosaic stay thin lines beside them."""
    repeat = max(1, 24 // max(tiles.shape[1:3]))
    return tiles.repeat(repeat, axis=1).repeat(repeat, axis=2)


def _draw_mosaic(axes, tiles: np.ndarray, columns: int, labels: bool = True) -> None:
    """tiles (n, h, w) or (n, h, w, 3) in [0, 1], drawn as one mosaic, each tile numbered when few.

    A mosaic drawn at least twice its size (it fills about 600 pixels) keeps sharp pixels; a larger
    one is smoothed as it shrinks, so fine patterns do not turn into moire.
    """
    count, height, width = tiles.shape[:3]
    mosaic = tile(tiles, columns)
    axes.imshow(mosaic, interpolation="nearest" if 2 * max(mosaic.shape[:2]) <= 600 else "antialiased")
    axes.set_axis_off()
    if labels and count <= LABELLED_TILES:
        for index in range(count):
            axes.text((index % columns) * (width + 1) - 0.5, (index // columns) * (height + 1) - 0.5, str(index),
                      fontsize=7, color="#ffd84d", va="top", ha="left",
                      bbox={"boxstyle": "square,pad=0.1", "facecolor": "black", "alpha": 0.55, "linewidth": 0})


def _mosaic_figure(tiles: np.ndarray, columns: int, width: float, side_panel: bool):
    """A figure `width` inches wide whose height follows the mosaic's shape, with one axes for the
    mosaic (and one on its left when side_panel); returns (figure, list of axes)."""
    count, height, tile_width = tiles.shape[:3]
    rows = math.ceil(count / columns)
    aspect = (columns * (tile_width + 1) - 1) / (rows * (height + 1) - 1)
    mosaic_width = width * (0.8 if side_panel else 0.95)
    figure = _figure(width, min(max(mosaic_width / aspect, 1.5), 9.0) + 1.0)
    if not side_panel:
        return figure, [figure.add_subplot()]
    grid = figure.add_gridspec(1, 2, width_ratios=[1, 4])
    return figure, [figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])]


def _viewable(image: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 or floats -> (H, W, 3) for 3 channels, else the first channel (H, W), in [0, 1]."""
    image = np.asarray(image)
    image = image / 255.0 if image.dtype == np.uint8 else scale_each(image[None])[0]
    return np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]


def render_feature_maps(model: nn.Module, image, out_dir, picture=None) -> list[Path]:
    """One PNG per Conv2d layer: the input beside the layer's feature maps for it, tiled.

    image: (C, H, W), normalised as the model's training data (what `feature_maps` takes).
    picture: the same image as a person sees it, (C, H, W) uint8 or floats (default: `image`).
    Each map is scaled to its own range, so brighter means a stronger match of that channel's
    filter. Files: out_dir/feature-maps-NN-LAYER.png in the order the layers ran; returns their paths.
    """
    layers = dict(conv_layers(model))
    maps = feature_maps(model, image)
    shown = _viewable(image if picture is None else picture)
    paths, digits = [], max(2, len(str(len(maps))))
    for number, (name, output) in enumerate(maps.items(), start=1):
        layer = layers[name]
        columns = grid_columns(*output.shape)
        tiles = _enlarge(scale_each(output))
        figure, (left, right) = _mosaic_figure(tiles, columns, 9.0, side_panel=True)
        left.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        left.set_title("input", fontsize=9)
        left.set_axis_off()
        _draw_mosaic(right, tiles, columns)
        fused = ", after its fused ReLU" if layer.activation == "relu" else ""
        kernel = "x".join(map(str, layer.kernel_size))
        figure.suptitle(
            f"{name}: Conv2d {layer.in_channels}->{layer.out_channels}, {kernel} kernels; "
            f"feature maps {'x'.join(map(str, output.shape))}{fused}\n"
            "each map scaled to its own range: brighter = stronger match", fontsize=10,
        )
        paths.append(_save(figure, Path(out_dir) / f"feature-maps-{number:0{digits}d}-{name}.png"))
    return paths


def render_filters(model: nn.Module, out, layer: str | None = None) -> Path:
    """A PNG of the kernels of the first Conv2d (or the Conv2d named `layer`), tiled.

    weight (out_channels, in_channels, kH, kW): with 3 input channels each kernel is drawn in
    colour; otherwise each (filter, input channel) slice is a grey tile, one row per filter when
    there are several input channels. Each kernel is scaled to its own range: bright weights are
    where the filter wants bright input. Tiles are numbered like the feature maps they produce.
    """
    layers = conv_layers(model)
    if not layers:
        raise ValueError(f"render_filters: {type(model).__name__} has no Conv2d layer")
    found = dict(layers)
    if layer is not None and layer not in found:
        raise LookupError(f"render_filters: no Conv2d named '{layer}'; the Conv2d layers are {', '.join(found)}")
    name = layer or layers[0][0]
    weight = found[name].weight.numpy()
    filters, channels, height, width = weight.shape
    if channels == 3:
        tiles = _enlarge(np.moveaxis(scale_each(weight), 1, -1))
    else:
        tiles = _enlarge(scale_each(weight.reshape(filters * channels, height, width)))
    columns = grid_columns(filters, height, width) if channels in (1, 3) else channels
    figure, (axes,) = _mosaic_figure(tiles, columns, 6.0, side_panel=False)
    _draw_mosaic(axes, tiles, columns, labels=channels in (1, 3))
    colour = "RGB" if channels == 3 else "grey"
    figure.suptitle(f"{name}: {filters} filters of {channels}x{height}x{width} ({colour})\n"
                    "each scaled to its own range: bright = looks for bright input", fontsize=10)
    return _save(figure, Path(out))


def read_input(path, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """An image file as a checkpoint's model sees it, the way `minicnn predict` reads it.

    meta: the checkpoint's metadata (input_size, normalize). Returns (pixels (C, H, W) uint8,
    resized to the model's input; the same image (C, H, W) float32, scaled to [0, 1] and normalised).
    """
    from minicnn.inference import model_inputs

    pixels, batch = model_inputs([path], meta)
    return pixels[0], batch[0]


def visualize_checkpoint(checkpoint, image, out_dir) -> list[Path]:
    """What `minicnn visualize` does: the first layer's filters and every Conv2d's feature maps
    for one image file, from a checkpoint (or a run folder: its best one), as PNGs in out_dir;
    returns their paths."""
    from minicnn.inference import model_from_checkpoint

    require_matplotlib()
    model, meta = model_from_checkpoint(checkpoint)
    pixels, normalised = read_input(image, meta)
    layers = conv_layers(model)
    if not layers:
        raise ValueError(f"the model in {checkpoint} ({type(model).__name__}) has no Conv2d layer to draw")
    filters = render_filters(model, Path(out_dir) / f"filters-{layers[0][0]}.png")
    return [filters, *render_feature_maps(model, normalised, out_dir, picture=pixels)]


# -- training curves --------------------------------------------------------------------------------


def plot_training(run_dir, out=None) -> Path:
    """Loss and accuracy per epoch, train and test, from a run folder's metrics (`RunFolder.read_metrics`):
    one PNG of two panels, 1000x400 pixels. out: a .png file, or a folder for curves.png (default: run_dir)."""
    from minicnn.train.run_folder import RunFolder

    folder = RunFolder(run_dir)
    rows = folder.read_metrics()
    if not rows:
        raise ValueError(f"{folder.metrics_file} holds no finished epoch yet: plot the run once an epoch has ended")
    require_matplotlib()
    out = Path(out) if out is not None else folder.path
    if out.is_dir() or not out.suffix:
        out = out / CURVES_FILE
    try:
        settings = folder.read_settings()
    except (OSError, ValueError):  # a title without the model and dataset: the curves are what counts
        settings = {}
    epochs = [row["epoch"] for row in rows]
    figure = _figure(10.0, 4.0)
    loss, accuracy = figure.subplots(1, 2)
    for axes, key, label in ((loss, "loss", "cross-entropy loss"), (accuracy, "accuracy", "accuracy (%)")):
        scale = 100 if key == "accuracy" else 1
        for split, style in (("train", "-o"), ("test", "-s")):
            values = [row.get(f"{split}_{key}", math.nan) * scale for row in rows]
            axes.plot(epochs, values, style, markersize=4, label=split)
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
        axes.xaxis.get_major_locator().set_params(integer=True)
    best = max(rows, key=lambda row: row.get("test_accuracy", -1))
    if "test_accuracy" in best:
        accuracy.annotate(f"best {best['test_accuracy']:.2%}", (best["epoch"], best["test_accuracy"] * 100),
                          textcoords="offset points", xytext=(0, -14), ha="center", fontsize=8)
    what = " on ".join(str(settings[key]) for key in ("model", "dataset") if settings.get(key))
    figure.suptitle(f"{what or folder.path.name}: {len(rows)} epoch{'s' * (len(rows) != 1)}", fontsize=11)
    return _save(figure, out)
