"""Rank 1 kills itself with SIGKILL; rank 0 waits (10 s at most) for mpiexec to clean it up. Gives
MPICH's own report of a rank killed by a signal, for test_launch.py to read; each rank records its
process id as a --nproc rank does (in $MINICNN_LAUNCH_FOLDER).

    MINICNN_LAUNCH_FOLDER=DIR mpiexec -n 2 -print-all-exitcodes python d_killed_rank.py
"""

import os
import signal
import sys
import time

from mpi4py import MPI

from minicnn.distributed import launch

comm = MPI.COMM_WORLD
launch.record_rank(comm.rank)
if comm.rank == 0:  # one rank prints: mpiexec interleaves ranks' output byte by byte
    print("rank 0 ready", flush=True)
comm.Barrier()
if comm.rank == 1:
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(10)
sys.exit(0)
