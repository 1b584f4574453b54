"""minicnn.inference: evaluating a checkpoint on its test set and predicting the classes of image
files, from a checkpoint file or its run folder."""

import numpy as np
import pytest
from PIL import Image

from minicnn import data
from minicnn.inference import evaluate_checkpoint, model_from_checkpoint, model_inputs, predict
from minicnn.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A finished 3-epoch LeNet-5 run on the bundled digits (seed 0): its RunResult."""
    folder = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        config = TrainConfig(dataset="digits", epochs=3, seed=0, out=str(folder / "run"))
        return train(config, notify=lambda message: None)


@pytest.mark.parametrize("target", ["best.npz", ""], ids=["checkpoint", "run-folder"])
def test_evaluating_the_best_checkpoint_gives_the_best_logged_accuracy(digits_run, target):
    best = max(digits_run.history, key=lambda m: m["test_accuracy"])
    evaluated = evaluate_checkpoint(digits_run.out_dir / target)
    assert evaluated["dataset"] == "digits" and evaluated["images"] == 359
    assert evaluated["test_accuracy"] == best["test_accuracy"]
    assert evaluated["test_loss"] == pytest.approx(best["test_loss"], rel=1e-6)


def test_predict_names_the_classes_of_digit_images(digits_run, tmp_path):
    test_set = data.load_dataset("digits", "test")
    paths = []
    for i in range(30):
        paths.append(tmp_path / f"digit-{i}.png")
        Image.fromarray(test_set.images[i, 0]).save(paths[-1])
    big = tmp_path / "big-rgb.png"  # the first digit, twice the size and in colour: resized and converted
    Image.fromarray(np.repeat(np.repeat(test_set.images[0, 0], 2, 0), 2, 1)).convert("RGB").save(big)
    rows = predict(digits_run.out_dir / "best.npz", paths + [big])
    assert [row["image"] for row in rows] == [str(p) for p in paths + [big]]
    for row in rows:
        assert row["class"] == str(row["index"]) and 0.1 <= row["probability"] <= 1
    correct = sum(row["index"] == label for row, label in zip(rows, test_set.labels[:30]))
    assert correct >= 24, rows
    assert rows[-1]["index"] == rows[0]["index"]


def test_model_inputs_are_the_pixels_normalised_as_in_training(digits_run, tmp_path):
    image = data.load_dataset("digits", "test").images[0, 0]
    Image.fromarray(image).save(tmp_path / "digit.png")
    _, meta = model_from_checkpoint(digits_run.out_dir)
    pixels, batch = model_inputs([tmp_path / "digit.png"], meta)
    assert pixels.shape == batch.shape == (1, 1, 28, 28) and pixels.dtype == np.uint8 and batch.dtype == np.float32
    np.testing.assert_array_equal(pixels[0, 0], image)
    mean, std = meta["normalize"]["mean"][0], meta["normalize"]["std"][0]
    np.testing.assert_allclose(batch, (pixels / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_the_training_package_still_gives_the_inference_functions():
    import minicnn.train

    assert (minicnn.train.evaluate_checkpoint, minicnn.train.predict, minicnn.train.model_from_checkpoint) == (
        evaluate_checkpoint, predict, model_from_checkpoint)
