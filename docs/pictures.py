"""Render the example pictures of docs/pictures.md into docs/images/.

    python docs/pictures.py                          # trains LeNet-5 on the bundled digits (about a minute)
    python docs/pictures.py --run runs/lenet5-...    # or draws from a run you already have

Writes docs/images/filters.png (the first convolution's kernels), docs/images/feature-maps.png
(that layer's feature maps for one test digit) and docs/images/curves.png (the run's training
curves), with the same functions `minicnn visualize` and `minicnn plot` call. Needs matplotlib
(`pip install -e ".[plot]"` in a source checkout, or `pip install "minicnn-framework[plot]"`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from minicnn import data
from minicnn.train import TrainConfig, model_from_checkpoint, train
from minicnn.tools.pictures import conv_layers, plot_training, read_input, render_feature_maps, render_filters

IMAGES = Path(__file__).resolve().parent / "images"
DIGIT_CLASS = "7"   # the test digit drawn: the first 7, whose stroke and bar give the filters something to find


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="A run folder (holding its best checkpoint and metrics.jsonl) instead of training one.")
    parser.add_argument("--epochs", type=int, default=10, help="Epochs of the LeNet-5 trained when --run is not given.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        run = Path(args.run) if args.run else train(
            TrainConfig(model="lenet5", dataset="digits", epochs=args.epochs, seed=0, out=str(scratch / "lenet5-digits")),
        ).out_dir
        model, meta = model_from_checkpoint(run)  # a run folder stands for its best checkpoint
        test_set = data.load_dataset(meta["dataset"], "test")
        index = list(test_set.labels).index(test_set.classes.index(DIGIT_CLASS))
        digit = scratch / "digit.png"
        Image.fromarray(test_set.images[index][0]).save(digit)
        first = conv_layers(model)[0][0]
        IMAGES.mkdir(exist_ok=True)
        written = [render_filters(model, IMAGES / "filters.png", layer=first)]
        pixels, normalised = read_input(digit, meta)
        maps = render_feature_maps(model, normalised, scratch / "maps", picture=pixels)
        written.append(Path(shutil.copyfile(maps[0], IMAGES / "feature-maps.png")))
        written.append(plot_training(run, IMAGES / "curves.png"))
    for path in written:
        print(f"{path.relative_to(IMAGES.parent.parent)}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
