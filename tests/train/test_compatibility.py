"""A model that cannot take a dataset's images, or gives the wrong number of outputs, is refused
before the first epoch, naming the layer and both numbers."""

import numpy as np
import pytest
from PIL import Image

from minicnn import create_model, nn
from minicnn.train import TrainConfig, train
from minicnn.train.compatibility import ModelDataMismatch, check_model_fits


def quiet(message):
    """A `notify` that says nothing."""


def test_a_model_that_fits_passes_and_keeps_its_mode_and_statistics():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    model.train()
    before = {name: value.copy() for name, value in model.state_dict().items()}
    check_model_fits(model, "net", (1, 28, 28), 10, "mnist")
    assert model.training and model[1].training
    for name, value in model.state_dict().items():
        assert np.array_equal(value, before[name]), name


def test_an_output_count_that_is_not_the_class_count_names_the_last_layer_and_both_numbers():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 37))
    with pytest.raises(ModelDataMismatch) as caught:
        check_model_fits(model, "net.toml", (1, 28, 28), 10, "mnist")
    message = str(caught.value)
    assert "gives 37 outputs per image (its last layer, '1' (Linear))" in message
    assert "dataset 'mnist' has 10 classes" in message and "out_features = 10" in message


def test_images_the_model_cannot_take_name_the_layer_and_the_shapes():
    with pytest.raises(ModelDataMismatch) as caught:
        check_model_fits(create_model("lenet5"), "lenet5", (1, 20, 20), 10, "faces")
    message = str(caught.value)
    assert "model 'lenet5' cannot train on 'faces' (1x20x20 images)" in message
    # LeNet's last pool gives 16x3x3 = 144 features here, where its first Linear layer takes 16x5x5 = 400
    assert "layer 'classifier.1' (Linear) failed" in message and "input has 144 features" in message
    assert message.endswith("use a dataset whose images fit the model, or a model built for them")


def spec(tmp_path, outputs):
    path = tmp_path / "wide.toml"
    path.write_text(f'[[layers]]\ntype = "Flatten"\n\n[[layers]]\ntype = "Linear"\nin_features = 784\n'
                    f'out_features = {outputs}\n', encoding="utf-8")
    return str(path)


def test_training_a_spec_with_the_wrong_output_count_stops_before_the_first_epoch(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ModelDataMismatch, match="gives 37 outputs .* has 10 classes"):
        train(TrainConfig(model=spec(tmp_path, 37), dataset="digits", epochs=1, out=str(out)), notify=quiet)
    assert not (out / "last.safetensors").exists() and not (out / "metrics.jsonl").exists()


def test_training_on_images_too_small_for_the_model_stops_before_the_first_epoch(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / "faces" / split / label).mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 256, (20, 20), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "faces" / split / label / f"{i}.png")
    out = tmp_path / "run"
    config = TrainConfig(dataset="image-folder", data_dir=str(tmp_path / "faces"), epochs=1, out=str(out))
    with pytest.raises(ModelDataMismatch, match=r"cannot train on 'image-folder' \(1x20x20 images\)"):
        train(config, notify=quiet)
    assert not (out / "last.safetensors").exists()
