"""broadcast_parameters, all_reduce_gradients and DistributedOptimizer: in one process, and on two
ranks (scripts/e_gradients.py) against sums and a float64 NumPy training step computed here."""

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.distributed import DistributedOptimizer, SingleProcess, all_reduce_gradients


def test_one_rank_scales_and_fills_missing_gradients():
    given = np.array([1.0, -2.0, 4.0], dtype=np.float32)
    with_grad, without = nn.Parameter(np.zeros(3, dtype=np.float32)), nn.Parameter(np.zeros((2, 2)))
    frozen = nn.Parameter(np.zeros(1))
    frozen.requires_grad = False
    with_grad.grad = mc.Tensor(given.copy())
    all_reduce_gradients([with_grad, without, frozen], SingleProcess(), scale=0.5)
    np.testing.assert_array_equal(with_grad.grad.numpy(), given * 0.5)
    assert with_grad.grad.dtype == np.float32
    np.testing.assert_array_equal(without.grad.numpy(), np.zeros((2, 2)))
    assert frozen.grad is None


def test_one_rank_distributed_optimizer_is_the_optimizer():
    param = nn.Parameter(np.array([1.0, 2.0]))
    optimizer = DistributedOptimizer(mc.optim.SGD([param], lr=0.5), SingleProcess())
    param.grad = mc.Tensor(np.array([0.25, -1.0]))
    optimizer.step()
    np.testing.assert_array_equal(param.numpy(), [0.875, 2.5])
    assert optimizer.param_groups[0]["lr"] == 0.5  # the wrapped optimizer's attributes show through
    optimizer.zero_grad()
    assert param.grad is None


@pytest.fixture(scope="module")
def two_ranks(run_ranks):
    """Both ranks' results of scripts/e_gradients.py: [rank 0's, rank 1's]."""
    job = run_ranks("e_gradients.py").check()
    return [job.results(0), job.results(1)]


def test_all_reduce_gradients_sums_scales_and_counts_none_as_zeros(two_ranks):
    given = [r["reduced"]["given"] for r in two_ranks]
    assert given[1]["rank0_only"] is None
    for results in two_ranks:
        reduced = results["reduced"]
        np.testing.assert_array_equal(reduced["both"], (given[0]["both"] + given[1]["both"]) * np.float32(0.25))
        assert reduced["both"].dtype == np.float32 and reduced["rank0_only"].dtype == np.float64
        np.testing.assert_array_equal(reduced["rank0_only"], given[0]["rank0_only"] * 0.25)
        assert reduced["frozen"] is None


def test_broadcast_parameters_gives_every_rank_rank_0s_weights_and_buffers(two_ranks):
    before = [r["broadcast"]["before"] for r in two_ranks]
    assert all(not np.array_equal(before[0][name], before[1][name]) for name in before[0])
    for results in two_ranks:
        after = results["broadcast"]["after"]
        assert after.keys() == before[0].keys()
        for name, value in before[0].items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)
            assert after[name].dtype == value.dtype


def numpy_steps(initial: dict, images, labels, lr: float, momentum: float) -> dict:
    """The same SGD steps in one process on the whole of each batch, in float64, with the
    two-layer network's gradients written out by hand (Linear, ReLU, Linear, mean cross-entropy)."""
    w = {name: value.astype(np.float64) for name, value in initial.items()}
    buffers: dict = {}
    for x, y in zip(images, labels):
        hidden = x @ w["0.weight"].T + w["0.bias"]
        active = np.maximum(hidden, 0)
        logits = active @ w["2.weight"].T + w["2.bias"]
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        d_logits = (probabilities - np.eye(logits.shape[1])[y]) / len(x)
        d_hidden = (d_logits @ w["2.weight"]) * (hidden > 0)
        grads = {"2.weight": d_logits.T @ active, "2.bias": d_logits.sum(0),
                 "0.weight": d_hidden.T @ x, "0.bias": d_hidden.sum(0)}
        for name, grad in grads.items():
            buffers[name] = grad if name not in buffers else momentum * buffers[name] + grad
            w[name] = w[name] - lr * buffers[name]
    return w


def test_distributed_optimizer_on_half_batches_takes_the_full_batch_step(two_ranks):
    from_rank0 = two_ranks[0]["optimizer"]
    expected = numpy_steps(from_rank0["initial"], from_rank0["images"], from_rank0["labels"], lr=0.1, momentum=0.9)
    moved = max(np.abs(expected[name] - from_rank0["initial"][name]).max() for name in expected)
    assert moved > 1e-3  # the steps changed the weights, so agreeing below means something
    for results in two_ranks:
        final = results["optimizer"]["final"]
        for name, value in expected.items():
            assert final[name].dtype == np.float64
            np.testing.assert_allclose(final[name], value, rtol=0, atol=1e-12, err_msg=name)
    for name, value in two_ranks[0]["optimizer"]["final"].items():
        assert np.array_equal(value, two_ranks[1]["optimizer"]["final"][name]), f"{name} differs between ranks"
