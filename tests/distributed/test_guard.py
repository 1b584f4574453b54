"""Failing together: agree, refuse_differences and abort_on_error in one process, and on two ranks
(scripts/e_guard.py, scripts/e_abort.py) where one rank fails or differs."""

import pytest

from minicnn.distributed import SingleProcess, abort_on_error, agree, refuse_differences
from minicnn.distributed.guard import mark_raised_on_every_rank, raised_on_every_rank


def test_one_rank_agree_returns_or_raises_its_own():
    assert agree(SingleProcess(), lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(KeyError, match="missing"):
        agree(SingleProcess(), lambda: {}["missing"])


def test_one_rank_has_nothing_to_differ_from():
    refuse_differences(SingleProcess(), "options", {"model": "lenet5"})


def test_one_rank_abort_on_error_lets_the_error_through():
    with pytest.raises(ValueError, match="bad"), abort_on_error(SingleProcess()):
        raise ValueError("bad")


def test_marking_an_error():
    error = ValueError("x")
    assert not raised_on_every_rank(error)
    assert mark_raised_on_every_rank(error) is error and raised_on_every_rank(error)


@pytest.fixture(scope="module")
def two_ranks(run_ranks):
    """Both ranks' outcomes of scripts/e_guard.py: [rank 0's, rank 1's]."""
    job = run_ranks("e_guard.py").check()
    return [job.results(0), job.results(1)]


def test_agree_returns_each_ranks_result_when_none_failed(two_ranks):
    assert [r["agree_ok"] for r in two_ranks] == [("returned", 0), ("returned", 10)]


def test_agree_failing_on_rank_1_raises_on_every_rank(two_ranks):
    rank0, rank1 = (r["agree_rank1_fails"] for r in two_ranks)
    assert rank0 == ("raised", "DistributedError", "rank 1 of 2 failed: cannot read data.bin on rank 1", True)
    assert rank1 == ("raised", "ValueError", "cannot read data.bin on rank 1", True)


def test_agree_names_the_first_failing_rank(two_ranks):
    rank0, rank1 = (r["agree_both_fail"] for r in two_ranks)
    assert rank0 == ("raised", "ValueError", "cannot read data.bin on rank 0", True)
    assert rank1 == ("raised", "DistributedError", "rank 0 of 2 failed: cannot read data.bin on rank 0", True)


def test_refuse_differences_passes_ranks_started_alike(two_ranks):
    assert [r["same"] for r in two_ranks] == [("returned", None)] * 2


def test_refuse_differences_names_each_setting_and_both_values_on_every_rank(two_ranks):
    expected = ("the ranks were started with different options: rank 1 has extra 1 where rank 0 has None; "
                "rank 1 has model 'resnet20' where rank 0 has 'lenet5'. Start every rank with the same command, "
                "options and data")
    for results in two_ranks:
        assert results["differing"] == ("raised", "DistributedError", expected, True)


def test_refuse_differences_shows_five_differences_and_counts_the_rest(two_ranks):
    for results in two_ranks:
        kind, name, message, marked = results["many"]
        assert (kind, name, marked) == ("raised", "DistributedError", True)
        assert message.count("where rank 0 has 0") == 5 and "; and 2 more." in message


def test_a_rank_raising_alone_ends_the_job_with_its_message(run_ranks):
    job = run_ranks("e_abort.py", "raise", timeout=20)
    assert job.returncode == 1, job
    assert job.seconds < 10, job  # rank 0 was waiting in an all-reduce that rank 1 never joined
    assert ("minicnn: rank 1 of 2 (on " in job.stderr
            and "failed, stopping every rank: ValueError: cannot read shard-7.bin on rank 1" in job.stderr), job
    assert "Traceback" in job.stderr, job


@pytest.mark.parametrize(("case", "status", "said"), [
    ("exit", 3, None),  # a SystemExit was reported by whoever raised it: only its status is passed on
    ("interrupt", 130, "minicnn: rank 1 of 2 (on "),
])
def test_exit_and_interrupt_end_the_job_with_their_status(run_ranks, case, status, said):
    job = run_ranks("e_abort.py", case, timeout=20)
    assert job.returncode == status, job
    assert job.seconds < 10, job
    if said is None:
        assert "minicnn: rank" not in job.stderr and "Traceback" not in job.stderr, job
    else:
        assert said in job.stderr and "was interrupted: stopping every rank" in job.stderr, job


def test_an_error_raised_on_every_rank_leaves_normally(run_ranks):
    job = run_ranks("e_abort.py", "every-rank").check()
    assert [job.results(rank) for rank in (0, 1)] == [{"left with": "loss is NaN (rank 0)"},
                                                      {"left with": "loss is NaN (rank 1)"}]
    assert "MPI_Abort" not in job.stderr, job
