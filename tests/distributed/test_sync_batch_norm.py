"""SyncBatchNorm, sync_batch_norm and convert_sync_batchnorm: in one process against nn.BatchNorm1d/2d
and finite differences, and on two ranks (scripts/e_sync_batch_norm.py) against one process's batch
norm over the whole batch, computed here in float64."""

import numpy as np
import pytest

import minicnn as mc
from minicnn import backend, nn
from minicnn.distributed import Communicator, SingleProcess, SyncBatchNorm, convert_sync_batchnorm
from minicnn.distributed import sync_batch_norm as module
from minicnn.distributed.guard import raised_on_every_rank
from minicnn.kernels.reference import ReferenceBackend
from minicnn.testing import gradcheck

TIGHT = {"rtol": 1e-12, "atol": 1e-12}
RESULTS = ("y", "x_grad", "weight_grad", "bias_grad", "running_mean", "running_var", "num_batches_tracked")


class Silent(Communicator):
    """A communicator that fails the test if anything is communicated."""

    def all_reduce(self, array) -> None:
        raise AssertionError("evaluation must not communicate")


def batch_norm_like(shape: tuple, momentum, weight, bias, layer=None):
    """A float64 nn.BatchNorm1d/2d for inputs of `shape` (or `layer`, made float64) with these weights."""
    channels = shape[1]
    layer = layer or (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(channels, momentum=momentum)
    layer.double()
    layer.weight.data[...], layer.bias.data[...] = weight, bias
    return layer


def train_step(layer, x, g, device="cpu") -> dict:
    """One forward and backward pass of `layer` on x, with loss Σ g*y / N: what the test compares."""
    layer.zero_grad()
    images = mc.tensor(x, requires_grad=True).to(device)
    y = layer(images)
    ((y * mc.tensor(g).to(device)).sum() * (1.0 / len(x))).backward()
    return {"y": y.numpy(), "x_grad": images.grad.numpy(), "weight_grad": layer.weight.grad.numpy(),
            "bias_grad": layer.bias.grad.numpy(), **layer.state_dict()}


@pytest.fixture(params=["cpu", "reference", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request, monkeypatch):
    """Where SyncBatchNorm runs: the CPU backend (C kernels: the backward pass recomputes x_hat from x),
    the reference backend on NumPy (it keeps x_hat instead), or a GPU."""
    if request.param == "cuda" and not backend.gpu_available("cuda"):
        pytest.skip("needs an NVIDIA GPU and CuPy")
    if request.param == "reference":
        monkeypatch.setattr(module, "kernels_for", lambda array: ReferenceBackend(np))
        return "cpu"
    return request.param


CASES = [((6, 3, 4, 5), 0.1), ((6, 3, 4, 5), None), ((7, 4), 0.3), ((5, 2, 3), None)]


@pytest.mark.parametrize("shape, momentum", CASES)
def test_one_rank_is_batch_norm(device, shape, momentum, rng):
    weight, bias = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    plain = batch_norm_like(shape, momentum, weight, bias)
    synced = SyncBatchNorm(shape[1], momentum=momentum, comm=SingleProcess())
    batch_norm_like(shape, momentum, weight, bias, synced)
    synced.to(device)
    for _ in range(3):  # momentum None: the running statistics average every batch so far
        x, g = 3 * rng.standard_normal(shape) + 2, rng.standard_normal(shape)
        expected, got = train_step(plain, x, g), train_step(synced, x, g, device)
        for name in RESULTS:
            np.testing.assert_allclose(got[name], expected[name], **TIGHT, err_msg=name)
    assert list(synced.state_dict()) == list(plain.state_dict())


def test_gradients_match_finite_differences(rng):
    comm = SingleProcess()
    x, weight, bias = 2 * rng.standard_normal((4, 3, 2, 3)) - 1, rng.standard_normal(3), rng.standard_normal(3)
    assert gradcheck(lambda x, w, b: module.sync_batch_norm(x, comm, None, None, w, b), [x, weight, bias])
    assert gradcheck(lambda x: module.sync_batch_norm(x, comm), [rng.standard_normal((5, 2))])


def test_evaluation_is_batch_norm_and_does_not_communicate(rng):
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    plain = batch_norm_like((4, 3, 2, 2), 0.1, weight, bias)
    plain.running_mean.data[...], plain.running_var.data[...] = rng.standard_normal(3), rng.random(3) + 0.5
    synced = convert_sync_batchnorm(batch_norm_like((4, 3, 2, 2), 0.1, weight, bias), Silent())
    synced.load_state_dict(plain.state_dict())
    x = rng.standard_normal((4, 3, 2, 2))
    np.testing.assert_allclose(synced.eval()(mc.tensor(x)).numpy(), plain.eval()(mc.tensor(x)).numpy(), **TIGHT)
    without_statistics = SyncBatchNorm(3, track_running_stats=False, comm=Silent()).eval()
    np.testing.assert_allclose(without_statistics(mc.tensor(x)).numpy(),
                               nn.BatchNorm2d(3, track_running_stats=False).eval()(mc.tensor(x)).numpy(), **TIGHT)


def test_one_value_per_channel_in_all_is_refused_on_every_rank():
    layer = SyncBatchNorm(3, comm=SingleProcess())
    with pytest.raises(ValueError, match="more than one value per channel over every rank's batch, got 1") as error:
        layer(mc.tensor(np.ones((1, 3), dtype=np.float32)))
    assert raised_on_every_rank(error.value)
    with pytest.raises(ValueError, match=r"input has 2 channels"):
        layer(mc.tensor(np.ones((4, 2), dtype=np.float32)))


def test_convert_keeps_parameters_buffers_and_names(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5),
                          nn.BatchNorm1d(5, momentum=None))
    model.double()
    model(mc.tensor(rng.standard_normal((4, 2, 4, 4))))  # running statistics away from their start
    for param in model.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    x = rng.standard_normal((6, 2, 4, 4))
    expected = model(mc.tensor(x)).numpy()
    before, parameters, buffers = model.state_dict(), list(model.parameters()), list(model.buffers())
    optimizer = mc.optim.SGD(model.parameters(), lr=0.1)

    assert convert_sync_batchnorm(model, SingleProcess()) is model
    assert [type(layer).__name__ for layer in model] == ["Conv2d", "SyncBatchNorm", "ReLU", "Flatten", "Linear",
                                                        "SyncBatchNorm"]
    after = model.state_dict()
    assert list(after) == list(before)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert all(a is b for a, b in zip(model.parameters(), parameters, strict=True))
    assert all(a is b for a, b in zip(model.buffers(), buffers, strict=True))
    assert optimizer.param_groups[0]["params"][2] is model[1].weight
    assert model[5].momentum is None and model[5].training
    np.testing.assert_allclose(model(mc.tensor(x)).numpy(), expected, **TIGHT)
    with pytest.raises(ValueError, match="2 or 3 dimensions"):  # BatchNorm1d's shape check stays
        model[5](mc.tensor(rng.standard_normal((2, 5, 1, 1))))


def test_convert_a_layer_and_a_shared_layer():
    layer = nn.BatchNorm2d(4)
    converted = convert_sync_batchnorm(layer, SingleProcess())
    assert isinstance(converted, SyncBatchNorm) and converted.weight is layer.weight
    shared = nn.BatchNorm1d(2)
    model = convert_sync_batchnorm(nn.Sequential(shared, nn.ReLU(), shared), SingleProcess())
    assert model[0] is model[2] and isinstance(model[0], SyncBatchNorm)


@pytest.fixture(scope="module")
def two_ranks(run_ranks):
    """Both ranks' results of scripts/e_sync_batch_norm.py: [rank 0's, rank 1's]."""
    job = run_ranks("e_sync_batch_norm.py").check()
    return [job.results(0), job.results(1)]


@pytest.mark.parametrize("case", ["unequal 2d", "unequal 1d", "rank 1 empty"])
def test_two_ranks_train_as_one_process_on_the_whole_batch(two_ranks, case):
    ranks = [results[case] for results in two_ranks]
    inputs = ranks[0]["inputs"]
    assert all(rank["type"] == "SyncBatchNorm" and rank["same_weight"] for rank in ranks)
    shape = inputs["x"][0].shape
    plain = batch_norm_like(shape, None if case == "unequal 1d" else 0.1, inputs["weight"], inputs["bias"])
    for step, (x, g) in enumerate(zip(inputs["x"], inputs["g"])):
        expected = train_step(plain, x, g)
        got = [rank["steps"][step] for rank in ranks]
        for name in ("y", "x_grad"):  # each rank's rows of the whole batch's
            np.testing.assert_allclose(np.concatenate([r[name] for r in got]), expected[name], **TIGHT, err_msg=name)
        for name in ("weight_grad", "bias_grad"):  # this rank's part: the loop sums them
            np.testing.assert_allclose(got[0][name] + got[1][name], expected[name], **TIGHT, err_msg=name)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_array_equal(got[0][name], got[1][name], err_msg=name)
            np.testing.assert_allclose(got[0][name], expected[name], **TIGHT, err_msg=name)
    evaluated = plain.eval()(mc.tensor(inputs["x"][-1])).numpy()
    np.testing.assert_allclose(np.concatenate([rank["evaluated"] for rank in ranks]), evaluated, **TIGHT)
