"""TrainConfig refuses every setting that cannot work, naming it, before any data is read."""

import math

import numpy as np
import pytest

from minicnn.backend import DeviceError
from minicnn.train import TrainConfig, train


@pytest.mark.parametrize(
    "setting, value, expected",
    [
        ("lr", math.nan, "lr (--lr) must be a finite number >= 0, got nan"),
        ("lr", math.inf, "lr (--lr) must be a finite number >= 0, got inf"),
        ("lr", -0.1, "lr (--lr) must be a finite number >= 0, got -0.1"),
        ("weight_decay", math.nan, "weight_decay (--weight-decay) must be a finite number >= 0"),
        ("weight_decay", -math.inf, "weight_decay (--weight-decay) must be a finite number >= 0"),
        ("momentum", math.nan, "momentum (--momentum) must be a finite number >= 0"),
        ("limit_train", 0, "limit_train (--limit-train) must be a whole number >= 1, got 0"),
        ("limit_train", -3, "limit_train (--limit-train) must be a whole number >= 1, got -3"),
        ("limit_train", 2.5, "limit_train (--limit-train) must be a whole number >= 1, got 2.5"),
        ("epochs", 0, "epochs (--epochs) must be a whole number >= 1, got 0"),
        ("batch_size", True, "batch_size (--batch-size) must be a whole number >= 1, got True"),
        ("seed", -1, "seed (--seed) must be a whole number >= 0"),
        ("optimizer", "sgdd", "unknown optimizer 'sgdd': use sgd or adam"),
        ("schedule", "linear", "unknown schedule 'linear': use cosine, step or none"),
        ("model", "", "model must be a registered model name or a .toml spec path"),
        ("model_options", [1], "model_options must be a dict"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_by_name(setting, value, expected):
    with pytest.raises(ValueError) as caught:
        TrainConfig(**{setting: value})
    assert expected in str(caught.value)


def test_an_unknown_device_is_refused_when_the_config_is_made():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        TrainConfig(device="tpu")


def test_values_that_can_work_are_kept_as_given():
    config = TrainConfig(lr=0.0, weight_decay=0, momentum=0, limit_train=np.int64(1), seed=np.int32(7),
                         epochs=1, batch_size=1, optimizer="adam", schedule="none", device="cuda:1")
    assert (config.lr, config.limit_train, config.seed, config.device) == (0.0, 1, 7, "cuda:1")


def test_a_setting_changed_after_construction_is_checked_before_any_work(tmp_path, monkeypatch):
    """train() checks again: nothing is read (no dataset is loaded) and no folder is made."""
    config = TrainConfig(dataset="digits", out=str(tmp_path / "run"))
    config.lr = math.nan
    monkeypatch.setattr("minicnn.data.load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    with pytest.raises(ValueError, match="lr"):
        train(config, notify=lambda message: None)
    assert not (tmp_path / "run").exists()
