"""Helpers for testing minidl and code built on it.

- :func:`gradcheck` compares an op's backward with float64 central differences.
- :func:`run_mpi` runs a script on real ranks under ``mpiexec`` with a timeout
  that kills the whole process group, and :func:`report` sends each rank's
  result back to the caller (or prints it, in a script started by hand).
"""

from minidl.testing.gradcheck import gradcheck
from minidl.testing.mpi import MPIJobError, MPIResult, MPITimeoutError, report, run_mpi

__all__ = ["gradcheck", "run_mpi", "report", "MPIResult", "MPIJobError", "MPITimeoutError"]
