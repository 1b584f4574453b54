"""GPUs in a job: which GPU each rank takes (`rank_device`), and NCCL between them.

Every rank of a `--device cuda` job takes the GPU of its local rank (its order among the ranks on
its machine), so the ranks of one machine never share a GPU. Their GPU arrays are summed by NCCL
(NVIDIA's collective library, through CuPy's `cupy.cuda.nccl`), GPU to GPU without a copy to host
memory: rank 0 draws NCCL's unique id, MPI carries it to the other ranks, and each rank joins the
NCCL communicator on its own GPU. Where CuPy has no NCCL (on any rank), `gpu_communicator` keeps
the MPI communicator, which copies GPU arrays through host memory: slower, same sums.

CuPy is imported only when a GPU is asked for; `rank_device` on the CPU never imports it.
"""

from __future__ import annotations

import numpy as np

from minicnn import backend
from minicnn.backend import Device, DeviceError
from minicnn.distributed.communicator import Communicator, _check_root
from minicnn.distributed.guard import abort_on_error, agree

NCCL_TYPES = ("float16", "float32", "float64", "int32", "int64", "uint8")  # the dtypes NCCL sums on the GPU


def gpu_count() -> int:
    """How many GPUs this machine has (a DeviceError, naming CUDA's error, when CuPy or the driver
    cannot say)."""
    cupy = backend.check_cuda_device(Device("cuda", 0))
    return cupy.cuda.runtime.getDeviceCount()


def rank_device(device, comm: Communicator) -> Device:
    """The device this rank of `comm` computes on, for a job started with `device`.

    "cpu": the CPU. "cuda" (no index): cuda:{local_rank}, one GPU per rank of a machine; refused
    when the machine has fewer GPUs than ranks. "cuda:N": GPU N, refused when several ranks run on
    this machine (they would all use GPU N). A Device cannot tell "cuda" from "cuda:0" (both parse
    to cuda:0), so a Device with index 0 counts as "cuda". Raises DeviceError, the same on every
    rank of a machine except for the local rank it names.
    """
    target = backend.device(device)
    if target.type == "cpu":
        return target
    named = (not isinstance(device, Device) and ":" in str(device)) or target.index != 0
    if named and comm.local_size > 1:
        raise DeviceError(
            f"device '{target}' names one GPU, but {comm.local_size} ranks run on this machine and would all "
            "use it: give device 'cuda' (--device cuda), and each rank takes the GPU of its local rank")
    count = gpu_count()
    index = target.index if named else comm.local_rank
    if index >= count:
        if named:
            raise DeviceError(f"device '{target}' does not exist: this machine has {count} GPU(s)")
        raise DeviceError(
            f"rank {comm.rank} is local rank {comm.local_rank} of {comm.local_size} ranks on this machine, which "
            f"has {count} GPU(s): each rank needs a GPU of its own, so start at most {count} rank(s) per machine "
            "(fewer with mpiexec -n or --nproc; -ppn or a hostfile across machines)")
    return Device("cuda", index)


def nccl_available() -> bool:
    """Whether CuPy here can call NCCL (CuPy installed with its NCCL library found)."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return bool(nccl.available)


def gpu_communicator(mpi: Communicator, device) -> Communicator:
    """The communicator of a GPU job over `mpi`'s ranks: an NCCLCommunicator on this rank's GPU
    (`rank_device(device, mpi)`) when every rank has NCCL, else `mpi` itself.

    Collective: every rank of `mpi` calls it. A rank whose GPU is refused, or which cannot draw
    NCCL's id, makes every rank raise (minicnn.distributed.agree) instead of leaving them waiting.
    """
    target = agree(mpi, rank_device, device, mpi)
    if not all(mpi.all_gather_object(nccl_available())):
        return mpi
    return NCCLCommunicator(mpi, target)


class NCCLCommunicator(Communicator):
    """NCCL for CuPy arrays on this rank's GPU, `mpi` (any Communicator over the same ranks) for
    NumPy arrays, objects, barriers and aborts.

    NCCL's all-reduce and broadcast are queued on the GPU's current CuPy stream and return before
    they finish: work queued after them on that stream, and copies to the host, see their result.
    `device` is this rank's GPU (rank_device); every CuPy array given must live there.
    """

    engine = "nccl"

    def __init__(self, mpi: Communicator, device: Device):
        from cupy.cuda import nccl

        self.mpi, self.device = mpi, device
        self.rank, self.size = mpi.rank, mpi.size
        self.local_rank, self.local_size = mpi.local_rank, mpi.local_size
        self._types = {np.dtype(name): getattr(nccl, f"NCCL_{name.upper()}") for name in NCCL_TYPES}
        self._sum = nccl.NCCL_SUM
        unique_id = mpi.broadcast_object(agree(mpi, nccl.get_unique_id if mpi.rank == 0 else lambda: None))
        # NCCL binds the communicator to the current GPU, and its creation waits for every rank: a
        # rank that fails here must end the job, since the others would wait in NCCL for it forever.
        with abort_on_error(mpi):
            self._cupy = backend.check_cuda_device(device)
            with self._cupy.cuda.Device(device.index):
                self.nccl = nccl.NcclCommunicator(self.size, unique_id, self.rank)

    def barrier(self) -> None:
        self.mpi.barrier()

    def all_reduce(self, array) -> None:
        if isinstance(array, np.ndarray):
            self.mpi.all_reduce(array)
            return
        datatype = self._checked(array, "all_reduce")
        if array.size:
            with self._cupy.cuda.Device(self.device.index):
                stream = self._cupy.cuda.get_current_stream().ptr
                self.nccl.allReduce(array.data.ptr, array.data.ptr, array.size, datatype, self._sum, stream)

    def broadcast(self, array, root: int = 0) -> None:
        _check_root(root, self.size)
        if isinstance(array, np.ndarray):
            self.mpi.broadcast(array, root)
            return
        datatype = self._checked(array, "broadcast")
        if array.size:
            with self._cupy.cuda.Device(self.device.index):
                stream = self._cupy.cuda.get_current_stream().ptr
                self.nccl.bcast(array.data.ptr, array.size, datatype, root, stream)

    def broadcast_object(self, value, root: int = 0):
        return self.mpi.broadcast_object(value, root)

    def all_gather_object(self, value) -> list:
        return self.mpi.all_gather_object(value)

    def abort(self, code: int = 1):
        self.mpi.abort(code)

    def _checked(self, array, what: str) -> int:
        """NCCL's type for `array` (a CuPy array), after the checks NCCL itself does not make."""
        if not array.flags.c_contiguous:
            raise ValueError(f"{what}: the array must be C-contiguous (cupy.ascontiguousarray)")
        if array.device.id != self.device.index:
            raise ValueError(f"{what}: the array is on cuda:{array.device.id}, but this rank's NCCL communicator "
                             f"is on {self.device}: move it there first")
        datatype = self._types.get(array.dtype)
        if datatype is None:
            raise TypeError(f"{what}: NCCL cannot sum {array.dtype} arrays; use one of {', '.join(NCCL_TYPES)}")
        return datatype


__all__ = ["NCCLCommunicator", "gpu_communicator", "gpu_count", "nccl_available", "rank_device"]
