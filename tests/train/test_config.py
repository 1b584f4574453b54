"""TrainConfig refuses every setting that cannot work, naming it, before any data is read; its
optimizers and schedules are the registered ones; its defaults are readable without making one."""

import math
from dataclasses import fields

import numpy as np
import pytest

import minicnn.plugin.manager
from minicnn import optim
from minicnn.backend import DeviceError
from minicnn.plugin.manager import PluginInfo, PluginSystem
from minicnn.plugin.registry import Entry
from minicnn.train import TrainConfig, train
from minicnn.train.config import default


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
        ("normalize", "yes", "normalize must be True or False, got 'yes'"),
        ("python_objects", ["model"], "python_objects must be a dict"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_by_name(setting, value, expected):
    with pytest.raises(ValueError) as caught:
        TrainConfig(**{setting: value})
    assert expected in str(caught.value)


@pytest.mark.parametrize("setting, value, suggestion", [("optimizer", "sgdd", "sgd"), ("schedule", "cosin", "cosine")])
def test_an_unknown_optimizer_or_schedule_suggests_the_closest_registered_name(setting, value, suggestion):
    with pytest.raises(ValueError, match=rf"`minicnn {setting}s` lists them\); did you mean '{suggestion}'\?$"):
        TrainConfig(**{setting: value})


def test_an_optimizer_a_plugin_registers_is_accepted_after_minicnn_s_own(monkeypatch):
    system = PluginSystem()
    system.registries["optimizers"].add(Entry("optimizer", "plain", optim.SGD, "mine", default_lr=0.5))
    system.plugins["mine"] = PluginInfo("mine", "minicnn-mine", "1.0", provides={"optimizers": ["plain"]})
    monkeypatch.setattr(minicnn.plugin.manager, "_system", system)
    assert TrainConfig(optimizer="plain").optimizer == "plain"
    with pytest.raises(ValueError, match="got nan; the default is 0.5 for plain"):
        TrainConfig(optimizer="plain", lr=math.nan)
    with pytest.raises(ValueError, match="unknown optimizer 'plane': use sgd, adam or plain"):
        TrainConfig(optimizer="plane")


def test_default_reads_each_setting_s_default_without_making_a_config():
    made = TrainConfig()
    assert {f.name: default(f.name) for f in fields(TrainConfig)} == {f.name: getattr(made, f.name) for f in fields(TrainConfig)}


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
