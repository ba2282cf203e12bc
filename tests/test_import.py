"""Importing minidl is cheap and MPI-free, and works the same on every rank."""

from __future__ import annotations

import subprocess
import sys

import pytest

import minidl
import minidl.kernels
from minidl.testing import run_mpi


def test_import_does_not_start_mpi():
    # A fresh interpreter: in this one, other tests may have imported mpi4py already.
    code = (
        "import sys\n"
        "import minidl, minidl.testing, minidl.kernels\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'mpi4py')\n"
        "assert not loaded, f'importing minidl imported {loaded}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.mpi
def test_import_on_every_rank():
    job = run_mpi(
        """
        import minidl
        import minidl.kernels
        from mpi4py import MPI
        from minidl.testing import report

        report((MPI.COMM_WORLD.rank, minidl.__version__, minidl.kernels.backend()))
        """,
        3,
    )
    expected = [(rank, minidl.__version__, minidl.kernels.backend()) for rank in range(3)]
    assert job.results == expected
