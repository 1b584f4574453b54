"""Communicators: SingleProcess in this process; MPICommunicator on two ranks under mpiexec, each
collective checked against what it must compute from both ranks' inputs."""

import numpy as np
import pytest

from minicnn.distributed import SingleProcess


def test_single_process_is_a_world_of_one():
    comm = SingleProcess()
    assert (comm.rank, comm.size, comm.local_rank, comm.engine) == (0, 1, 0, "none")
    array = np.arange(6.0).reshape(2, 3)
    comm.all_reduce(array)
    comm.broadcast(array, root=0)
    comm.barrier()
    np.testing.assert_array_equal(array, np.arange(6.0).reshape(2, 3))
    value = {"a": [1, 2]}
    assert comm.broadcast_object(value) is value
    assert comm.all_gather_object(value) == [value]
    assert repr(comm) == "SingleProcess(rank=0, size=1, engine='none')"


@pytest.mark.parametrize("root", [1, -1])
def test_single_process_refuses_a_root_beyond_its_one_rank(root):
    with pytest.raises(ValueError, match=f"root must be a rank between 0 and 0, got {root}"):
        SingleProcess().broadcast(np.zeros(2), root=root)
    with pytest.raises(ValueError, match=f"got {root}"):
        SingleProcess().broadcast_object("x", root=root)


def test_single_process_abort_exits_with_the_code():
    with pytest.raises(SystemExit) as exit_info:
        SingleProcess().abort(3)
    assert exit_info.value.code == 3


@pytest.fixture(scope="module")
def two_ranks(run_ranks):
    """Both ranks' results of scripts/e_communicator.py: [rank 0's, rank 1's]."""
    job = run_ranks("e_communicator.py").check()
    return [job.results(0), job.results(1)]


def test_ranks_know_their_place(two_ranks):
    assert [(r["rank"], r["size"], r["engine"]) for r in two_ranks] == [(0, 2, "mpi"), (1, 2, "mpi")]
    assert sorted(r["local_rank"] for r in two_ranks) == [0, 1]  # both on this machine


@pytest.mark.parametrize("name", ["float32", "float64", "int64"])
def test_all_reduce_is_the_sum_on_every_rank(two_ranks, name):
    first, second = (r["inputs"][name] for r in two_ranks)
    assert not np.array_equal(first, second)
    expected = first + second  # one addition, rounded once in the dtype: what MPI_SUM of two gives
    for results in two_ranks:
        reduced = results[f"all_reduce_{name}"]
        assert reduced.dtype == first.dtype and reduced.shape == first.shape
        np.testing.assert_array_equal(reduced, expected)


def test_all_reduce_keeps_int64_exact_beyond_float64(two_ranks):
    first, second = (r["inputs"]["int64"] for r in two_ranks)
    exact = [int(a) + int(b) for a, b in zip(first, second)]
    assert exact != [int(v) for v in (first.astype(np.float64) + second.astype(np.float64)).astype(np.int64)]
    assert [int(v) for v in two_ranks[0]["all_reduce_int64"]] == exact


def test_broadcast_copies_the_roots_array_to_every_rank(two_ranks):
    for results in two_ranks:
        np.testing.assert_array_equal(results["broadcast_root1"], np.full(4, 11.0))


def test_objects_travel(two_ranks):
    for results in two_ranks:
        assert results["broadcast_object"] == {"sent by": 0, "values": [0, "x"]}
        assert results["all_gather_object"] == [("rank", 0), ("rank", 1)]


def test_refused_calls_name_the_problem_on_every_rank(two_ranks):
    for results in two_ranks:
        assert "must be C-contiguous" in results["non_contiguous"]
        assert results["root_too_large"] == "root must be a rank between 0 and 1, got 2"
        assert results["root_negative"] == "root must be a rank between 0 and 1, got -1"


def test_barrier_waits_for_the_late_rank(two_ranks):
    assert two_ranks[0]["barrier_wait"] > 0.4  # rank 1 slept 0.5 s before its barrier
