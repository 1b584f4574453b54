"""Two ranks train what one process trains: the issue's CI checks, each a 2-rank job against the same
run in one process (scripts/e_train.py runs `minicnn.train.run.train`/`resume`, scripts/e_fit.py
runs `mc.fit`), comparing the run folders' checkpoints and each rank's final weights.

The bound. With the same seed and options, a 2-rank step differs from the one-process step only in
the order its float32 sums are added: each rank sums the loss gradient over its slice of the batch
(13 and 12 of 25 images here), the all-reduce adds the two, and batch norm's statistics (sync_bn)
are summed the same way. That changes a gradient by a few units in the last place (ulp) of its
terms, so one step's weights differ by far less than an ulp of the weights; but every later
step carries the earlier differences forward through the network, and they grow. Measured
here, LeNet-5 on the bundled digits, 48 steps: max|diff| / max|w| = 3.7e-7 (seed 3, the test's),
1.7e-7 to 7.6e-7 (seeds 0 to 2); 96 steps: 1.0e-6. Growth is about linear in the number of steps K,
near 1/16 to 1/4 of float32's unit roundoff u = 2**-24 (half an ulp, relative) of the largest
weight per step. The tests allow one u of the largest weight per step:

    max |w_2ranks - w_1process| <= K * 2**-24 * max |w|          (K = optimizer steps taken)

four to sixteen times what was measured, and far below what a real mistake gives (weighting the
13- and 12-image slices 1/2 each instead of by their sizes moves the LeNet-5 weights by 0.08, a
fifth of max|w|, after 48 steps). The weights of rank 0 and rank 1 must be bitwise equal: they
apply the same all-reduced gradients to the same starting weights. ReLUs make the differences
jump where an input within rounding of 0 changes sign; LeNet-5 has no batch norm to spread such a
jump over a channel, and stays within the bound; ResNet-20 is compared in float64 (its test says why).
"""

import json
import math

import numpy as np
import pytest

from minicnn.train.checkpoint import load_checkpoint

FLOAT32, FLOAT64 = 2.0**-24, 2.0**-53  # unit roundoffs
LENET = {"model": "lenet5", "dataset": "digits", "batch_size": 25, "limit_train": 600, "seed": 3, "out": "run"}


def steps(images: int, batch_size: int, epochs: int) -> int:
    return epochs * math.ceil(images / batch_size)


LENET_EPOCH = steps(LENET["limit_train"], LENET["batch_size"], 1)  # 24 steps


def assert_close_weights(got: dict, expected: dict, steps_taken: int, names=None, per_step: float = FLOAT32) -> None:
    """The bound of the module's docstring, `per_step` of the largest weight per step, over `names`
    (every floating-point entry by default)."""
    names = [name for name in expected if expected[name].dtype.kind == "f"] if names is None else names
    assert got.keys() == expected.keys()
    largest = max(float(np.abs(expected[name]).max()) for name in names)
    differences = {name: float(np.abs(got[name].astype(np.float64) - expected[name]).max()) for name in names}
    worst = max(differences, key=differences.get)
    bound = steps_taken * per_step * largest
    assert differences[worst] <= bound, (
        f"{worst} differs by {differences[worst]:.3g} > {bound:.3g} after {steps_taken} steps")


def assert_same_on_every_rank(job) -> None:
    rank0, rank1 = job.results(0)["state"], job.results(1)["state"]
    assert rank0.keys() == rank1.keys()
    for name, value in rank0.items():
        assert np.array_equal(value, rank1[name]), f"{name} differs between rank 0 and rank 1"


def last_weights(job) -> dict:
    """The model state in the last checkpoint of the run folder the job's rank 0 wrote (or continued)."""
    return load_checkpoint(job.folder / job.results(0)["out"] / "last.safetensors").model


def train(run_ranks, n, config: dict, timeout: float = 30):
    """scripts/e_train.py on `n` ranks (None: one process without mpiexec), checked to have succeeded."""
    return run_ranks("e_train.py", json.dumps(config), n=n, timeout=timeout).check()


def resume(run_ranks, n, run_folder, epochs: int, timeout: float = 30):
    return run_ranks("e_train.py", "--resume", run_folder, epochs, n=n, timeout=timeout).check()


def test_lenet5_two_ranks_train_the_weights_of_one_process(run_ranks):
    """48 steps with unequal slices (13 and 12 images of each 25), the default SGD with momentum,
    weight decay and cosine schedule."""
    config = {**LENET, "epochs": 2}
    alone, together = train(run_ranks, None, config), train(run_ranks, 2, config)
    assert_same_on_every_rank(together)
    expected = last_weights(alone)
    for name, value in last_weights(together).items():
        assert np.array_equal(value, together.results(0)["state"][name]), f"{name}: the checkpoint is not rank 0's"
    assert_close_weights(last_weights(together), expected, 2 * LENET_EPOCH)
    for mine, theirs in zip(together.results(0)["history"], alone.results(0)["history"]):
        assert mine["test_accuracy"] == pytest.approx(theirs["test_accuracy"], abs=1 / 300)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)


def test_resnet20_with_sync_bn_trains_the_weights_and_statistics_of_one_process(run_ranks):
    """ResNet-20 through mc.fit with sync_bn, 18 steps on 128 random 3x16x16 images in batches of 15
    (slices of 8 and 7, the last batch 4 and 4): batch norm's statistics over the global batch make
    each step the one-process step, running statistics included (num_batches_tracked exactly).

    In float64 (scripts/e_fit.py's InFloat64). In float32 a step can differ by far more than its
    rounding: a ReLU whose input lies within rounding of 0 passes its gradient in one layout and
    stops it in the other, and the batch norm before it spreads that one element over its whole
    channel. Measured here in float32 on a first batch of 16 of these images: one element of layer2.2's output
    at 1.7e-6 changed the first step's gradients by 3.4%, with every batch norm agreeing to 1e-6
    before it. In float64 no input falls that close to 0, and the runs agree to 1.2e-15 * max|w|
    after 18 steps (0.6 unit roundoffs per step: batch norm's backward amplifies more than
    LeNet-5's layers); the bound is 16 float64 unit roundoffs of the largest weight per step,
    3.2e-14 * max|w|, where per-rank statistics instead of global ones, or batch norm's input
    gradient from this rank's sums alone, miss by 0.4 (in a running mean)."""
    options = {"model": "resnet20", "float64": True, "images": [128, 3, 16, 16],
               "fit": {"epochs": 2, "batch_size": 15, "seed": 0, "sync_bn": True, "out": "run"}}
    alone = run_ranks("e_fit.py", json.dumps(options), n=None, timeout=30).check()
    together = run_ranks("e_fit.py", json.dumps(options), n=2, timeout=30).check()
    assert_same_on_every_rank(together)
    expected, got = alone.results(0)["state"], together.results(0)["state"]
    statistics = [name for name in expected if name.endswith(("running_mean", "running_var"))]
    assert len(statistics) == 2 * 19  # every batch norm of ResNet-20 is checked
    taken = steps(128, 15, 2)
    assert_close_weights(got, expected, taken, per_step=16 * FLOAT64)
    assert_close_weights(got, expected, taken, names=statistics, per_step=16 * FLOAT64)
    for name in expected:
        if name.endswith("num_batches_tracked"):
            assert got[name] == expected[name] == taken, name
    assert_close_weights(last_weights(together), last_weights(alone), taken, per_step=16 * FLOAT64)


def test_a_two_rank_checkpoint_resumes_in_one_process(run_ranks):
    """Epoch 1 on two ranks, epoch 2 resumed in one process: the weights of 2 epochs in one process
    (schedule "none", so that stopping after epoch 1 changes no learning rate)."""
    config = {**LENET, "epochs": 1, "schedule": "none"}
    straight = train(run_ranks, None, {**config, "epochs": 2})
    first = train(run_ranks, 2, config)
    second = resume(run_ranks, None, first.folder / "run", 2)
    assert [epoch["epoch"] for epoch in second.results(0)["history"]] == [2]
    assert_close_weights(last_weights(second), last_weights(straight), 2 * LENET_EPOCH)


def test_a_one_process_checkpoint_resumes_on_two_ranks(run_ranks):
    config = {**LENET, "epochs": 1, "schedule": "none"}
    straight = train(run_ranks, None, {**config, "epochs": 2})
    first = train(run_ranks, None, config)
    second = resume(run_ranks, 2, first.folder / "run", 2)
    assert_same_on_every_rank(second)
    assert [epoch["epoch"] for epoch in second.results(0)["history"]] == [2]
    assert_close_weights(last_weights(second), last_weights(straight), 2 * LENET_EPOCH)
