"""Whole training steps on the GPU against the same steps on the CPU: LeNet-5 and ResNet-20 (batch
norm, residual shortcuts, global pooling) from identical weights, a short `minicnn.train` run
whose checkpoint must load and evaluate on the CPU, and a run with dropout stopped and resumed on
the GPU that ends exactly where an uninterrupted one does."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import optim
from minicnn.backend import gpu_available
from minicnn.train import (
    Callbacks, TrainConfig, evaluate_checkpoint, load_checkpoint, model_from_checkpoint, resume, train,
)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")]

CPU, GPU = mc.device("cpu"), mc.device("cuda")

MODELS = {"lenet5": (4, 1, 28, 28), "resnet20": (2, 3, 32, 32)}

# Tolerances of the losses and of the state after the steps. A ReLU or max-pool decision on a value
# within rounding of its threshold can go either way on either device, and in float32 that happens
# now and then in a network this size (about one run in ten for ResNet-20 against a float64
# reference): the first loss does not feel it, the gradients move by a few percent where it
# happened. float64 makes such a flip vanishingly rare, so its comparison stays tight; float32
# checks the first loss tightly and the rest to what a flip can move.
STEP_TOLERANCES = {
    # dtype: (rtol of the first loss, rtol of the second, atol of the state as a fraction of the
    #         largest value in the whole model)
    np.float32: (1e-5, 1e-3, 2e-3),
    np.float64: (1e-10, 1e-9, 1e-9),
}


def same_model_twice(name: str, dtype):
    """(model on the CPU, model on the GPU) with identical weights and buffers."""
    mc.manual_seed(0)
    on_cpu, on_gpu = mc.create_model(name), mc.create_model(name)
    on_gpu.load_state_dict(on_cpu.state_dict())
    if dtype == np.float64:
        on_cpu.double()
        on_gpu.double()
    return on_cpu, on_gpu.to("cuda")


def assert_states_close(gpu_state: dict, cpu_state: dict, relative_atol: float) -> None:
    """Every entry within relative_atol of the largest floating-point value of any entry."""
    assert list(gpu_state) == list(cpu_state)
    scale = max(float(np.abs(value).max()) for value in cpu_state.values() if value.size and value.dtype.kind == "f")
    for name, expected in cpu_state.items():
        np.testing.assert_allclose(gpu_state[name], expected, rtol=0, atol=relative_atol * scale, err_msg=name)


@pytest.mark.parametrize("name", MODELS)
def test_training_steps_match_the_cpu(name, dtype, rng):
    """Two steps of SGD with momentum and weight decay in training mode: the losses of both steps
    (the second one sees the first update) and every weight and running statistic afterwards."""
    on_cpu, on_gpu = same_model_twice(name, dtype)
    images = rng.standard_normal(MODELS[name]).astype(dtype)
    labels = rng.integers(0, 10, size=MODELS[name][0])
    losses = {}
    for where, model in ((CPU, on_cpu), (GPU, on_gpu)):
        optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        x, target = mc.tensor(images, device=where), mc.tensor(labels, device=where)
        model.train()
        losses[where] = []
        for _ in range(2):
            loss = F.cross_entropy(model(x), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[where].append(loss.item())
    assert all(p.device == GPU for p in on_gpu.parameters())
    assert all(math.isfinite(value) for value in losses[GPU])
    first, second, state = STEP_TOLERANCES[dtype]
    np.testing.assert_allclose(losses[GPU][0], losses[CPU][0], rtol=first, err_msg="first loss")
    np.testing.assert_allclose(losses[GPU][1], losses[CPU][1], rtol=second, err_msg="second loss")
    assert_states_close(on_gpu.state_dict(), on_cpu.state_dict(), state)


def quiet(message):
    """A `notify` that says nothing."""


def test_train_on_cuda_follows_the_cpu_run_and_its_checkpoint_loads_on_the_cpu(tmp_path, isolated):
    """Four batches of LeNet-5 on the bundled digits, once per device from the same seed (so the same
    initial weights and batch order): finite losses, the same metrics and weights to float32
    accuracy, and a GPU checkpoint that a CPU-only process could load and evaluate."""
    runs = {}
    for device in ("cpu", "cuda"):
        config = TrainConfig(model="lenet5", dataset="digits", epochs=1, batch_size=64, limit_train=256,
                             device=device, seed=0, out=str(tmp_path / device))
        runs[device] = train(config, notify=quiet)
    on_gpu, on_cpu = runs["cuda"].history[0], runs["cpu"].history[0]
    assert math.isfinite(on_gpu["train_loss"]) and math.isfinite(on_gpu["test_loss"])
    for key in ("train_loss", "test_loss"):
        np.testing.assert_allclose(on_gpu[key], on_cpu[key], rtol=1e-3, err_msg=key)

    checkpoint = runs["cuda"].out_dir / "last.safetensors"
    saved = load_checkpoint(checkpoint)
    assert all(isinstance(value, np.ndarray) for value in saved.model.values())
    assert_states_close(saved.model, load_checkpoint(runs["cpu"].out_dir / "last.safetensors").model, 1e-3)
    model, meta = model_from_checkpoint(checkpoint)
    assert meta["config"]["device"] == "cuda"
    assert all(p.device == CPU for p in model.parameters())
    result = evaluate_checkpoint(checkpoint)
    np.testing.assert_allclose(result["test_loss"], on_gpu["test_loss"], rtol=1e-4)
    assert abs(result["test_accuracy"] - on_gpu["test_accuracy"]) <= 1 / result["images"]


class Stopped(Exception):
    """Ends a run once its first epoch is saved, as a kill would."""


class StopAfterFirstEpoch(Callbacks):
    def on_epoch_end(self, metrics):
        raise Stopped


def test_a_run_with_dropout_stopped_and_resumed_on_the_gpu_ends_with_the_same_weights(tmp_path, isolated):
    """alexnet_small (two Dropout layers) on digits for 2 epochs, straight and stopped after epoch 1
    then resumed: the same weights bit for bit, because the checkpoint holds the GPU's random
    stream and the resumed run draws the masks that followed rather than the first ones again."""

    def config(name):
        return TrainConfig(model="alexnet_small", dataset="digits", epochs=2, batch_size=64, limit_train=256,
                           device="cuda", seed=0, out=str(tmp_path / name))

    straight = train(config("straight"), notify=quiet)
    with pytest.raises(Stopped):
        train(config("stopped"), callbacks=StopAfterFirstEpoch(), notify=quiet)
    halfway = load_checkpoint(tmp_path / "stopped" / "last.safetensors").meta
    assert halfway["epoch"] == 1 and halfway["rng_state"]["cuda:0"]["draws"] >= 2 * 4  # 2 masks a batch
    resumed = resume(tmp_path / "stopped", notify=quiet)
    assert [m["epoch"] for m in resumed.history] == [2]
    expected = load_checkpoint(straight.out_dir / "last.safetensors")
    finished = load_checkpoint(tmp_path / "stopped" / "last.safetensors")
    assert finished.meta["rng_state"] == expected.meta["rng_state"]
    assert list(finished.model) == list(expected.model)
    for name, value in expected.model.items():
        assert np.array_equal(finished.model[name], value), name
