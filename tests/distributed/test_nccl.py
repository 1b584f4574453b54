"""Each rank's GPU (rank_device), the choice between NCCL and MPI's host path (gpu_communicator), and
NCCLCommunicator on one GPU.

rank_device and gpu_communicator are checked here on the CPU, with a stand-in communicator and the
GPU count set by hand, and on two real MPI ranks (scripts/b_nccl.py). The `gpu` tests run NCCL on
the one GPU of the machines lent here: a world of one rank, whose sums must equal their inputs and
must have gone through NCCL. Several GPUs have not run this path yet.
"""

import subprocess
import sys

import numpy as np
import pytest

from minicnn.backend import Device, DeviceError, gpu_available
from minicnn.distributed import SingleProcess, nccl, rank_device

requires_gpu = pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU and CuPy")


class Ranks:
    """A stand-in communicator: this rank's place, and what the other ranks answer to
    all_gather_object (the same value, except `others_have_nccl` for a boolean)."""

    def __init__(self, local_rank=0, local_size=1, rank=None, size=None, others_have_nccl=True):
        self.local_rank, self.local_size = local_rank, local_size
        self.rank = local_rank if rank is None else rank
        self.size = local_size if size is None else size
        self.others_have_nccl = others_have_nccl

    def all_gather_object(self, value) -> list:
        other = self.others_have_nccl if isinstance(value, bool) else value
        return [value if rank == self.rank else other for rank in range(self.size)]


@pytest.fixture
def gpus(monkeypatch):
    """`gpus(n)`: this machine has n GPUs, as far as rank_device can tell."""
    return lambda count: monkeypatch.setattr(nccl, "gpu_count", lambda: count)


def test_cpu_stays_cpu_without_importing_cupy():
    code = ("import sys; from minicnn.distributed import SingleProcess, rank_device; "
            "print(rank_device('cpu', SingleProcess()), 'cupy' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown == "cpu False\n"


@pytest.mark.parametrize("device", ["cuda", "gpu", Device("cuda", 0)])
@pytest.mark.parametrize("local_rank", [0, 1, 2])
def test_cuda_without_an_index_is_the_gpu_of_the_local_rank(gpus, device, local_rank):
    gpus(4)
    on_second_machine = Ranks(local_rank, local_size=3, rank=local_rank + 3, size=6)
    assert rank_device(device, on_second_machine) == Device("cuda", local_rank)


def test_more_ranks_on_a_machine_than_gpus_are_refused_saying_how_many_of_each(gpus):
    gpus(2)
    assert rank_device("cuda", Ranks(1, local_size=3)) == Device("cuda", 1)
    with pytest.raises(DeviceError) as refused:
        rank_device("cuda", Ranks(2, local_size=3, rank=6, size=8))
    assert str(refused.value) == (
        "rank 6 is local rank 2 of 3 ranks on this machine, which has 2 GPU(s): each rank needs a GPU of its own, "
        "so start at most 2 rank(s) per machine (fewer with mpiexec -n or --nproc; -ppn or a hostfile across machines)")


@pytest.mark.parametrize("device", ["cuda:0", "cuda:1", Device("cuda", 1)])
def test_a_named_gpu_is_refused_when_ranks_share_the_machine(gpus, device):
    gpus(2)
    with pytest.raises(DeviceError, match=r"names one GPU, but 2 ranks run on this machine and would all use it: "
                                          r"give device 'cuda' \(--device cuda\)"):
        rank_device(device, Ranks(0, local_size=2))


def test_a_named_gpu_is_taken_by_the_one_rank_of_each_machine(gpus):
    gpus(2)
    assert rank_device("cuda:1", Ranks(0, local_size=1, rank=3, size=4)) == Device("cuda", 1)
    assert rank_device("cuda:0", SingleProcess()) == Device("cuda", 0)
    with pytest.raises(DeviceError, match=r"device 'cuda:2' does not exist: this machine has 2 GPU\(s\)"):
        rank_device("cuda:2", SingleProcess())


def test_without_nccl_the_gpu_job_keeps_the_mpi_communicator(gpus, monkeypatch):
    gpus(2)
    monkeypatch.setattr(nccl, "nccl_available", lambda: False)
    monkeypatch.setattr(nccl, "NCCLCommunicator", lambda *args: pytest.fail("made an NCCL communicator"))
    mpi = Ranks(1, local_size=2)
    assert nccl.gpu_communicator(mpi, Device("cuda", 0)) is mpi


def test_nccl_is_used_only_when_every_rank_has_it(gpus, monkeypatch):
    gpus(2)
    monkeypatch.setattr(nccl, "nccl_available", lambda: True)
    monkeypatch.setattr(nccl, "NCCLCommunicator", lambda mpi, device: ("nccl", mpi, device))
    mpi = Ranks(1, local_size=2)
    assert nccl.gpu_communicator(mpi, Device("cuda", 0)) == ("nccl", mpi, Device("cuda", 1))
    alone = Ranks(1, local_size=2, others_have_nccl=False)
    assert nccl.gpu_communicator(alone, Device("cuda", 0)) is alone


def test_nccl_available_follows_cupy():
    try:
        from cupy.cuda import nccl as cupy_nccl
    except ImportError:
        assert nccl.nccl_available() is False
    else:
        assert nccl.nccl_available() is bool(cupy_nccl.available)


@pytest.fixture(scope="module")
def refusal(run_ranks):
    """Both ranks' results of scripts/b_nccl.py refusal: [rank 0's, rank 1's]."""
    job = run_ranks("b_nccl.py", "refusal").check()
    return [job.results(0), job.results(1)]


def test_a_rank_without_a_gpu_fails_every_rank_of_the_job(refusal):
    assert [r["local"] for r in refusal] == [(0, 2), (1, 2)]
    own = refusal[1]["one gpu"]
    assert own.startswith("DeviceError: rank 1 is local rank 1 of 2 ranks on this machine, which has 1 GPU(s)")
    assert refusal[0]["one gpu"] == f"DistributedError: rank 1 of 2 failed: {own.removeprefix('DeviceError: ')}"


def test_a_job_where_one_rank_lacks_nccl_uses_mpi_on_its_gpus(refusal):
    assert [r["fallback"] for r in refusal] == [("MPICommunicator", "mpi", f"cuda:{rank}") for rank in (0, 1)]


@pytest.fixture(scope="module")
def nccl_on_gpu0():
    """(comm, sent_to_mpi): an NCCLCommunicator of one rank on cuda:0 (a SingleProcess carries its id
    and objects), whose MPI side records the arrays it is given instead of summing them, so that an
    array not in `sent_to_mpi` went through NCCL. One for the module: each costs NCCL's setup."""
    comm, sent_to_mpi = nccl.NCCLCommunicator(SingleProcess(), Device("cuda", 0)), []
    comm.mpi.all_reduce = comm.mpi.broadcast = lambda array, root=0: sent_to_mpi.append(array)
    yield comm, sent_to_mpi
    comm.nccl.destroy()


@pytest.fixture
def one_gpu(nccl_on_gpu0):
    """(comm, cupy, sent_to_mpi) of nccl_on_gpu0, with nothing sent to MPI yet."""
    import cupy

    comm, sent_to_mpi = nccl_on_gpu0
    sent_to_mpi.clear()
    return comm, cupy, sent_to_mpi


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int64", "uint8"])
@pytest.mark.parametrize("shape", [(3, 5), (1_000_000,)])
def test_one_rank_nccl_returns_its_input(one_gpu, dtype, shape, rng):
    comm, cupy, sent_to_mpi = one_gpu
    assert (comm.engine, comm.device, comm.nccl.size(), comm.nccl.rank_id(), comm.nccl.device_id()) == \
        ("nccl", Device("cuda", 0), 1, 0, 0)
    values = (rng.standard_normal(shape) * 50).astype(dtype)
    array = cupy.asarray(values)
    comm.all_reduce(array)
    comm.broadcast(array, root=0)
    assert sent_to_mpi == [] and array.dtype == values.dtype and array.device.id == 0
    np.testing.assert_array_equal(array.get(), values)


@pytest.mark.gpu
@requires_gpu
def test_nccl_runs_on_the_current_stream_in_order(one_gpu):
    comm, cupy, sent_to_mpi = one_gpu
    with cupy.cuda.Stream(non_blocking=True):
        array = cupy.arange(1_000_000, dtype=cupy.float64)
        comm.all_reduce(array)
        array *= 2
        np.testing.assert_array_equal(array.get(), 2 * np.arange(1_000_000, dtype=np.float64))
    assert sent_to_mpi == []


@pytest.mark.gpu
@requires_gpu
def test_nccl_refuses_what_it_cannot_sum(one_gpu):
    comm, cupy, _ = one_gpu
    with pytest.raises(ValueError, match="all_reduce: the array must be C-contiguous"):
        comm.all_reduce(cupy.zeros((4, 4))[:, 1])
    with pytest.raises(TypeError, match="broadcast: NCCL cannot sum bool arrays; use one of float16, float32"):
        comm.broadcast(cupy.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="root must be a rank between 0 and 0, got 1"):
        comm.broadcast(cupy.zeros(3), root=1)


@pytest.mark.gpu
@requires_gpu
def test_numpy_arrays_take_the_mpi_side(one_gpu):
    comm, _, sent_to_mpi = one_gpu
    array = np.zeros(3)
    comm.all_reduce(array)
    comm.broadcast(array)
    assert len(sent_to_mpi) == 2 and all(sent is array for sent in sent_to_mpi)


@pytest.mark.gpu
@requires_gpu
def test_mpi_carries_cupy_arrays_through_host_memory(run_ranks):
    """Two ranks on one GPU, without NCCL: MPICommunicator copies each array to the host and back."""
    job = run_ranks("b_nccl.py", "host", timeout=60).check()
    first = np.arange(12, dtype=np.float32).reshape(3, 4)
    for rank in (0, 1):
        results = job.results(rank)
        assert results["still on the GPU"] == ["cupy", "cupy"]
        assert results["all_reduce"].dtype == np.float32
        np.testing.assert_array_equal(results["all_reduce"], first * 1 + first * 2)
        np.testing.assert_array_equal(results["broadcast"], np.full(5, 11.0))


@pytest.mark.gpu
@requires_gpu
def test_world_on_a_gpu_is_nccl_with_its_id_sent_over_mpi(run_ranks):
    """`world("cuda")` under mpiexec, one rank: the whole path a GPU job takes to NCCL."""
    results = run_ranks("b_nccl.py", "nccl", n=1, timeout=60).check().results(0)
    assert results["communicator"] == ("NCCLCommunicator", "nccl", "cuda:0", 1)
    np.testing.assert_array_equal(results["values"], np.linspace(-1, 1, 1_000_000, dtype=np.float32))
    np.testing.assert_array_equal(results["host all_reduce"], np.arange(4))
