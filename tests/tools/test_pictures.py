"""minicnn.tools.pictures: the feature maps a forward pass produces, tiling, and the PNGs drawn from a
tiny trained LeNet-5 (their pixel size, and that they are not blank); matplotlib stays optional."""

import re
import subprocess
import sys

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.inference import model_from_checkpoint
from minicnn.tools import pictures

MISSING = ('needs matplotlib: install it with `pip install "minicnn-framework[plot]"` '
           '(from a source checkout: `pip install -e ".[plot]"`)')
needs_matplotlib = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode != 0,
    reason='matplotlib is not installed (pip install -e ".[plot]")',
)


# -- arrays (no matplotlib needed) -----------------------------------------------------------------


def test_feature_maps_are_each_convolution_output_for_the_image():
    mc.manual_seed(0)
    model = mc.create_model("lenet5").train()
    image = np.random.default_rng(0).standard_normal((1, 28, 28)).astype(np.float32)
    maps = pictures.feature_maps(model, image)
    assert {name: m.shape for name, m in maps.items()} == {"features.0": (6, 28, 28), "features.3": (16, 10, 10)}
    conv = model.features[0]
    expected = F.conv2d(mc.tensor(image[None]), conv.weight, conv.bias, padding=2).numpy()[0]
    np.testing.assert_allclose(maps["features.0"], expected, rtol=1e-5, atol=1e-5)
    assert model.training, "the model's mode is restored"
    assert all(not layer._forward_hooks for _, layer in pictures.conv_layers(model)), "the hooks are removed"
    assert pictures.feature_maps(model, image[None]).keys() == maps.keys()


def test_a_fused_convolution_gives_its_maps_after_the_relu():
    mc.manual_seed(0)
    model = mc.create_model("lenet5")
    image = np.random.default_rng(1).standard_normal((1, 28, 28)).astype(np.float32)
    plain = pictures.feature_maps(model, image)
    assert nn.fuse_conv_relu(model) == 2
    fused = pictures.feature_maps(model, image)
    np.testing.assert_allclose(fused["features.0"], np.maximum(plain["features.0"], 0), atol=1e-6)
    assert plain["features.0"].min() < 0 <= fused["features.0"].min()


def test_feature_maps_refuse_a_batch_and_a_model_without_convolutions():
    with pytest.raises(ValueError, match=r"one image .* got shape \(2, 1, 28, 28\)"):
        pictures.feature_maps(mc.create_model("lenet5"), np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="Sequential has no Conv2d layer"):
        pictures.feature_maps(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), np.zeros((1, 2, 2), np.float32))


def test_scale_each_stretches_every_array_to_its_own_range():
    arrays = np.stack([np.arange(4.0).reshape(2, 2), np.full((2, 2), 7.0), -np.arange(4.0).reshape(2, 2) * 100])
    scaled = pictures.scale_each(arrays)
    np.testing.assert_allclose(scaled[0], [[0, 1 / 3], [2 / 3, 1]], rtol=1e-6)
    np.testing.assert_array_equal(scaled[1], 0)
    np.testing.assert_allclose(scaled[2], [[1, 2 / 3], [1 / 3, 0]], rtol=1e-6)


def test_tile_lays_images_out_row_by_row_with_gaps():
    images = np.stack([np.full((2, 3), value) for value in (0.0, 0.25, 0.5, 1.0, 0.75)])
    assert pictures.grid_columns(5, 2, 3) == 2
    mosaic = pictures.tile(images)
    assert mosaic.shape == (3 * 3 - 1, 2 * 4 - 1, 3)
    np.testing.assert_array_equal(mosaic[0:2, 4:7], 0.25)
    np.testing.assert_array_equal(mosaic[6:8, 0:3], 0.75)
    np.testing.assert_array_equal(mosaic[6:8, 4:7], 1.0)        # the unused cell is white
    np.testing.assert_allclose(mosaic[2, 0], pictures.GAP_COLOUR)
    np.testing.assert_allclose(mosaic[0, 3], pictures.GAP_COLOUR)
    rgb = pictures.tile(np.random.default_rng(0).random((4, 2, 2, 3)), columns=4)
    assert rgb.shape == (2, 11, 3)
    with pytest.raises(ValueError, match="tile"):
        pictures.tile(np.zeros((2, 2)))


def test_read_input_reads_the_image_as_predict_does(trained_lenet):
    out, digit = trained_lenet
    _, meta = model_from_checkpoint(out / "best.safetensors")
    pixels, normalised = pictures.read_input(digit, meta)
    assert pixels.shape == (1, 28, 28) and pixels.dtype == np.uint8
    mean, std = meta["normalize"]["mean"][0], meta["normalize"]["std"][0]
    np.testing.assert_allclose(normalised, (pixels / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_plot_training_errors_name_what_is_missing_before_drawing(tmp_path):
    """How the metrics are read is RunFolder.read_metrics' (tests/train/test_run_folder.py)."""
    with pytest.raises(FileNotFoundError, match="run folder .*nowhere not found"):
        pictures.plot_training(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="has no metrics.jsonl"):
        pictures.plot_training(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no finished epoch"):
        pictures.plot_training(tmp_path)


# -- pictures ---------------------------------------------------------------------------------------


@needs_matplotlib
def test_visualize_checkpoint_draws_the_filters_and_one_picture_per_convolution(trained_lenet, tmp_path, assert_picture):
    out, digit = trained_lenet
    paths = pictures.visualize_checkpoint(out / "best.safetensors", digit, tmp_path / "pictures")
    model, _ = model_from_checkpoint(out / "best.safetensors")
    maps = [path for path in paths if path.name.startswith("feature-maps-")]
    assert [path.name for path in maps] == ["feature-maps-01-features.0.png", "feature-maps-02-features.3.png"]
    assert len(maps) == len(pictures.conv_layers(model))
    assert paths[0].name == "filters-features.0.png"
    assert sorted(tmp_path.joinpath("pictures").iterdir()) == sorted(paths)
    for path in maps:
        assert_picture(path, width=900)
    assert_picture(paths[0], width=600)


@needs_matplotlib
def test_render_filters_of_a_colour_and_a_multichannel_layer(tmp_path, assert_picture):
    mc.manual_seed(0)
    model = mc.create_model("lenet5", in_channels=3)
    colour = assert_picture(pictures.render_filters(model, tmp_path / "rgb.png"), width=600)
    spread = colour.max(axis=-1).astype(int) - colour.min(axis=-1)
    assert (spread > 100).mean() > 0.05, "3-channel kernels are drawn in colour"
    assert_picture(pictures.render_filters(model, tmp_path / "second.png", layer="features.3"), width=600)
    with pytest.raises(LookupError, match="no Conv2d named 'features.1'; the Conv2d layers are features.0, features.3"):
        pictures.render_filters(model, tmp_path / "x.png", layer="features.1")


@needs_matplotlib
def test_render_feature_maps_of_a_fused_model_from_python(tmp_path, assert_picture):
    mc.manual_seed(0)
    model = mc.create_model("lenet5")
    nn.fuse_conv_relu(model)
    image = np.random.default_rng(0).standard_normal((1, 28, 28)).astype(np.float32)
    paths = pictures.render_feature_maps(model, image, tmp_path)
    assert len(paths) == 2
    for path in paths:
        assert_picture(path, width=900)


@needs_matplotlib
def test_plot_training_draws_two_panels_where_asked(trained_lenet, tmp_path, assert_picture):
    out, _ = trained_lenet
    default = pictures.plot_training(out)
    assert default == out / "curves.png"
    assert_picture(default, width=1000, height=400)
    assert pictures.plot_training(out, tmp_path / "curves-here.png") == tmp_path / "curves-here.png"
    assert pictures.plot_training(out, tmp_path / "folder") == tmp_path / "folder" / "curves.png"
    assert_picture(tmp_path / "folder" / "curves.png", width=1000, height=400)


# -- matplotlib is optional -------------------------------------------------------------------------


def test_without_matplotlib_drawing_says_how_to_install_it(trained_lenet, monkeypatch, tmp_path):
    out, _ = trained_lenet
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(pictures.MatplotlibMissingError, match=f"^{re.escape(f'minicnn plot {MISSING}')}$"):
        pictures.require_matplotlib("minicnn plot")
    with pytest.raises(pictures.MatplotlibMissingError, match="minicnn.tools.pictures needs matplotlib"):
        pictures.plot_training(out, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_importing_minicnn_its_training_and_its_cli_never_imports_matplotlib():
    code = ("import sys, minicnn, minicnn.train, minicnn.tools.pictures, minicnn.cli; "
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if m.startswith('matplotlib'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
