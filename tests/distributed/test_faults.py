"""Faults in a 2-rank training job: a rank killed, a rank raising, ranks started differently. Each
ends the whole job within seconds with a status other than 0, never a hang (the run_ranks timeout
turns a hang into a failure); what a stopped run leaves resumes."""

import json

from minicnn.train.checkpoint import load_checkpoint

# LeNet-5 through mc.fit on 200 random 28x28 images: 10 steps per epoch.
LENET = {"model": "lenet5", "images": [200, 1, 28, 28], "fit": {"epochs": 3, "batch_size": 20, "seed": 0, "out": "run"}}


def test_a_rank_killed_ends_the_job_and_the_last_checkpoint_resumes(run_ranks):
    """Rank 1 sends itself SIGKILL in step 5 of epoch 2, after rank 0 wrote epoch 1's checkpoint
    (rank 0 cannot have begun epoch 2's steps, whose all-reduces rank 1 joined, before writing it)."""
    killed = run_ranks("e_fit.py", json.dumps({**LENET, "fault": {"rank": 1, "step": 15, "kind": "kill"}}))
    assert killed.returncode != 0, killed
    assert killed.seconds < 10, killed
    assert not (killed.folder / "rank0.pkl").exists(), "rank 0 finished the run without rank 1"
    run = killed.folder / "run"
    assert load_checkpoint(run / "last.safetensors").meta["epoch"] == 1
    resumed = run_ranks("e_fit.py", json.dumps({**LENET, "fault": None, "fit": {"resume": str(run), "epochs": 3}}),
                        n=None).check()
    assert [epoch["epoch"] for epoch in resumed.results(0)["history"]] == [2, 3]
    assert load_checkpoint(run / "last.safetensors").meta["epoch"] == 3


def test_a_rank_raising_ends_every_rank_with_its_message(run_ranks):
    job = run_ranks("e_fit.py", json.dumps({**LENET, "fault": {"rank": 1, "step": 3, "kind": "raise"}}))
    assert job.returncode == 1, job
    assert job.seconds < 10, job
    assert "minicnn: rank 1 of 2 (on " in job.stderr, job
    assert "failed, stopping every rank: OSError: cannot read shard-3.bin at step 3" in job.stderr, job
    assert not (job.folder / "run" / "last.safetensors").exists()


def test_ranks_started_with_different_options_are_refused_before_any_run_folder(run_mpmd):
    """`mpiexec -n 1 A : -n 1 B` where B asks for another batch size: every rank refuses at the
    start, naming the setting and both values."""
    config = {"model": "lenet5", "dataset": "digits", "epochs": 1, "limit_train": 100, "seed": 0, "out": "run"}
    job = run_mpmd("e_train.py", [json.dumps({**config, "batch_size": 25})], [json.dumps({**config, "batch_size": 50})])
    assert job.returncode != 0, job
    assert "rank 1 has batch_size 50 where rank 0 has 25" in job.stderr, job
    assert job.stderr.count("DistributedError: the ranks were started with different settings") == 2, job
    assert not (job.folder / "run").exists()


def test_ranks_given_different_data_are_refused_before_any_run_folder(run_mpmd):
    """mc.fit on arrays that differ between the ranks (another seed on rank 1): refused at the start."""
    different = [json.dumps({**LENET, "data_seed": seed}) for seed in (0, 1)]
    job = run_mpmd("e_fit.py", [different[0]], [different[1]])
    assert job.returncode != 0, job
    assert "train labels checksum" in job.stderr, job
    assert not (job.folder / "run").exists()
