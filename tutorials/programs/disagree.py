# Run: mpiexec -n 2 python -m mpi4py tutorials/programs/disagree.py
"""Rank 1 passes one element more: every rank raises the same clear error instead of hanging."""

import numpy as np
from mpi4py import MPI

from minidl.distributed import allreduce
from minidl.testing import report

comm = MPI.COMM_WORLD
try:
    allreduce(np.ones(1000 + comm.rank, np.float32))
    message = "no error"
except ValueError as error:
    message = str(error)
report(message)
