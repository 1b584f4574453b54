"""minicnn.inference: evaluating a checkpoint on its test set and predicting the classes of image
files, from a checkpoint file or its run folder."""

import numpy as np
import pytest
from PIL import Image

from minicnn import data
from minicnn.inference import (
    evaluate_checkpoint, light_background, model_from_checkpoint, model_inputs, predict, trained_light_on_dark,
)
from minicnn.train import RunFolder, TrainConfig, train

pytestmark = pytest.mark.usefixtures("isolated")  # tests/conftest.py: no real cache or mirror


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A finished 3-epoch LeNet-5 run on the bundled digits (seed 0): its RunResult."""
    folder = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICNN_CACHE", str(folder / "cache"))
        config = TrainConfig(dataset="digits", epochs=3, seed=0, out=str(folder / "run"))
        return train(config, notify=lambda message: None)


@pytest.mark.parametrize("target", ["checkpoint", "run-folder"])
def test_evaluating_the_best_checkpoint_gives_the_best_logged_accuracy(digits_run, target):
    best = max(digits_run.history, key=lambda m: m["test_accuracy"])
    evaluated = evaluate_checkpoint(RunFolder(digits_run.out_dir).best if target == "checkpoint" else digits_run.out_dir)
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
    rows = predict(digits_run.out_dir, paths + [big])
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


def test_predict_reads_a_digit_drawn_dark_on_white_as_the_same_digit_light_on_dark(digits_run, tmp_path):
    images = data.load_dataset("digits", "test").images[:10, 0]
    light, dark = [], []
    for i, image in enumerate(images):
        light.append(tmp_path / f"light-{i}.png")
        dark.append(tmp_path / f"dark-{i}.png")
        Image.fromarray(image).save(light[-1])
        Image.fromarray(255 - image).save(dark[-1])
    as_trained, as_drawn = predict(digits_run.out_dir, light), predict(digits_run.out_dir, dark)
    assert not any(row["inverted"] for row in as_trained) and all(row["inverted"] for row in as_drawn)
    assert [(r["index"], r["probability"]) for r in as_drawn] == [(r["index"], r["probability"]) for r in as_trained]
    raw = predict(digits_run.out_dir, dark, invert=False)
    assert [r["probability"] for r in raw] != [r["probability"] for r in as_trained]
    forced = predict(digits_run.out_dir, dark + light, invert=True)
    assert [r["index"] for r in forced[10:]] == [r["index"] for r in raw] and all(r["inverted"] for r in forced)


def picture(border: int, inside: int, size=(28, 28), channels: int = 1) -> np.ndarray:
    """One picture (1, C, H, W): the outermost ring of pixels `border`, everything inside it `inside`."""
    pixels = np.full((1, channels, *size), inside, np.uint8)
    pixels[..., 0, :] = pixels[..., -1, :] = pixels[..., :, 0] = pixels[..., :, -1] = border
    return pixels


def test_a_light_background_is_a_border_brighter_than_the_middle_of_the_range():
    cases = [picture(255, 0), picture(0, 255), picture(128, 0), picture(127, 255), picture(200, 30, (8, 5), 3)]
    assert [bool(light_background(case)[0]) for case in cases] == [True, False, True, False, True]
    assert light_background(np.concatenate(cases[:4])).tolist() == [True, False, True, False]  # one answer per picture
    half = np.array([[[[127, 128, 127], [128, 255, 128], [127, 128, 127]]]], np.uint8)  # a border averaging 127.5
    assert not light_background(half)[0]


def test_only_grey_models_trained_light_on_dark_invert_on_their_own(digits_run):
    _, meta = model_from_checkpoint(digits_run.out_dir)
    assert trained_light_on_dark(meta)  # the bundled digits: light strokes on black
    assert not trained_light_on_dark({"input_size": [1, 28, 28], "normalize": {"mean": [0.7], "std": [0.3]}})
    assert not trained_light_on_dark({"input_size": [3, 32, 32], "normalize": {"mean": [0.49, 0.48, 0.45],
                                                                               "std": [0.25, 0.24, 0.26]}})


def test_evaluate_falls_back_from_a_recorded_folder_that_is_gone_only_to_say_so(digits_run, tmp_path):
    from minicnn.train.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(RunFolder(digits_run.out_dir).best)
    meta = {**checkpoint.meta, "dataset": "image-folder", "config": {**checkpoint.meta["config"],
                                                                     "data_dir": str(tmp_path / "gone")}}
    moved = save_checkpoint(tmp_path / RunFolder(digits_run.out_dir).best.name, checkpoint.model, None, meta)
    with pytest.raises(data.DataUnavailableError, match="recorded: no longer exists") as error:
        evaluate_checkpoint(moved)
    assert f"{tmp_path / 'gone'}, the data folder the run {moved} recorded" in str(error.value)
    assert len(str(error.value).splitlines()) == 4 and "--data-dir DIR" in str(error.value)
    assert evaluate_checkpoint(moved, dataset="digits")["images"] == 359  # another dataset: not the recorded folder


def test_evaluating_a_run_trained_on_arrays_asks_for_a_dataset(tmp_path):
    """mc.fit on arrays records no dataset: evaluate_checkpoint names the way out instead of failing
    inside (it raised "'NoneType' object is not iterable")."""
    import minicnn as mc

    rng = np.random.default_rng(0)
    images, labels = rng.random((32, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 32)
    mc.fit(mc.create_model("lenet5"), (images, labels), epochs=1, batch_size=16, out=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="trained on arrays passed to mc.fit.*--dataset NAME"):
        evaluate_checkpoint(tmp_path / "run")
