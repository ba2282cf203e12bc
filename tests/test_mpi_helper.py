"""minidl.testing.run_mpi and report: real ranks under mpiexec, no mocks.

Starting a small job takes about 0.2 s here, so these tests are cheap except
the two timeout tests, which wait out their (short) timeouts on purpose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from minidl.testing import MPIJobError, MPIResult, MPITimeoutError, report, run_mpi
from minidl.testing.mpi import RESULTS_ENV

REPORT_RANK_ARRAY = """
    import numpy as np
    from mpi4py import MPI
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        print(f"hello from rank 0 of {comm.size}")
    # Rank- and index-dependent data: a mix-up between ranks cannot pass.
    data = np.arange(5.0) * (comm.rank + 1) + comm.rank
    report({"rank": comm.rank, "size": comm.size, "data": data})
"""

# Every rank waits to receive from its right neighbour, and nobody sends.
DEADLOCK = """
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    buf = np.zeros(1)
    comm.Recv(buf, source=(comm.rank + 1) % comm.size)
"""

REPORT_ARGV = """
    import sys
    from mpi4py import MPI
    from minidl.testing import report

    if MPI.COMM_WORLD.rank == 0:
        report(sys.argv[1:])
"""


@pytest.mark.mpi
def test_three_ranks_report_rank_dependent_arrays():
    job = run_mpi(REPORT_RANK_ARRAY, nprocs=3)

    assert isinstance(job, MPIResult)
    assert job.returncode == 0
    assert job.nprocs == 3
    assert len(job.results) == 3
    for rank, got in enumerate(job.results):
        assert got["rank"] == rank
        assert got["size"] == 3
        np.testing.assert_array_equal(got["data"], np.arange(5.0) * (rank + 1) + rank)
    assert "hello from rank 0 of 3" in job.stdout


@pytest.mark.mpi
@pytest.mark.parametrize("as_type", [str, Path])
def test_script_given_as_a_path_gets_its_args(tmp_path, as_type):
    script = tmp_path / "argv_job.py"
    script.write_text(textwrap.dedent(REPORT_ARGV))

    job = run_mpi(as_type(script), 2, args=["--lr", 0.5, "two words"])

    # Only rank 0 reports; rank 1's slot stays empty.
    assert job.results == [["--lr", "0.5", "two words"], None]


@pytest.mark.mpi
def test_source_text_gets_its_args():
    job = run_mpi(REPORT_ARGV, 2, args=["alpha", 3])
    assert job.results == [["alpha", "3"], None]


REPORT_ENV = """
    import os
    from minidl.testing import report
    report((os.environ["MINIDL_TEST_SETTING"], os.environ["OMP_NUM_THREADS"]))
"""


@pytest.mark.mpi
def test_env_reaches_every_rank_and_omp_threads_default_to_one(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    job = run_mpi(REPORT_ENV, 2, env={"MINIDL_TEST_SETTING": "on"})
    assert job.results == [("on", "1"), ("on", "1")]


@pytest.mark.mpi
def test_env_may_set_omp_threads():
    job = run_mpi(REPORT_ENV, 2, env={"MINIDL_TEST_SETTING": "off", "OMP_NUM_THREADS": "2"})
    assert job.results == [("off", "2"), ("off", "2")]


@pytest.mark.mpi
def test_exception_on_one_rank_ends_the_job_quickly():
    script = """
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        if comm.rank == 1:
            raise ValueError("rank 1 fails on purpose")
        comm.Barrier()  # the other ranks would wait here forever without mpi4py's abort
    """
    start = time.monotonic()
    with pytest.raises(MPIJobError) as caught:
        run_mpi(script, 3, timeout=30)
    elapsed = time.monotonic() - start

    assert not isinstance(caught.value, MPITimeoutError)
    assert elapsed < 15, f"the job took {elapsed:.1f} s to end after a rank raised"
    assert caught.value.returncode != 0
    assert "ValueError: rank 1 fails on purpose" in caught.value.stderr
    message = str(caught.value)
    assert f"return code {caught.value.returncode}" in message
    assert "ValueError: rank 1 fails on purpose" in message


@pytest.mark.mpi
def test_check_false_returns_the_failed_job():
    job = run_mpi("import sys\nraise RuntimeError('every rank fails')\n", 2, check=False)
    assert job.returncode != 0
    assert "RuntimeError: every rank fails" in job.stderr
    assert job.results == [None, None]


@pytest.mark.mpi
def test_deadlock_times_out_and_leaves_no_process(job_marker, processes_with):
    start = time.monotonic()
    with pytest.raises(MPITimeoutError) as caught:
        run_mpi(DEADLOCK, 2, args=[job_marker], env={"MINIDL_TEST_MARKER": job_marker}, timeout=5)
    elapsed = time.monotonic() - start

    assert 5 <= elapsed < 15
    message = str(caught.value)
    assert "timed out after 5 s" in message
    assert "killed" in message
    # No sleep before looking: run_mpi must return only once the job is gone.
    assert processes_with(job_marker) == []


@pytest.mark.mpi
def test_timeout_kills_processes_the_ranks_started(job_marker, processes_with):
    # Rank 0 starts a helper in a session of its own, as hydra does with every
    # rank: killing mpiexec's process group alone would leave it running.
    script = """
        import subprocess, sys
        import numpy as np
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        if comm.rank == 0:
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", sys.argv[1]],
                             start_new_session=True)
        print(f"rank {comm.rank} is waiting", flush=True)
        comm.Recv(np.zeros(1), source=(comm.rank + 1) % comm.size)
    """
    with pytest.raises(MPITimeoutError) as caught:
        run_mpi(script, 2, args=[job_marker], check=False, timeout=3)

    # The output printed before the kill is kept.
    assert "rank 0 is waiting" in caught.value.stdout
    assert "rank 1 is waiting" in caught.value.stdout
    assert processes_with(job_marker) == []


def test_leftover_process_check_sees_a_live_process(job_marker, processes_with):
    # The "nothing left running" assertions above are only as good as this check.
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "MINIDL_TEST_MARKER": job_marker},
    )
    try:
        deadline = time.monotonic() + 10
        while not processes_with(job_marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [line.split(":")[0] for line in processes_with(job_marker)] == [str(sleeper.pid)]
    finally:
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait()
    assert processes_with(job_marker) == []


def test_report_outside_run_mpi_prints_with_the_rank(monkeypatch, capsys):
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    report({"loss": 0.25})
    report("two\nlines")
    assert capsys.readouterr().out == "[rank 0] {'loss': 0.25}\n[rank 0] two\n[rank 0] lines\n"


# The script as a student runs it by hand: mpiexec, but no run_mpi to report to.
REPORT_BY_HAND = """
    import os
    from mpi4py import MPI
    from minidl.testing import report
    from minidl.testing.mpi import RESULTS_ENV

    del os.environ[RESULTS_ENV]
    report({"rank": MPI.COMM_WORLD.rank, "square": MPI.COMM_WORLD.rank ** 2})
"""


@pytest.mark.mpi
def test_report_under_mpiexec_without_run_mpi_prints_each_rank():
    job = run_mpi(REPORT_BY_HAND, 3)
    assert job.results == [None, None, None]
    lines = sorted(line for line in job.stdout.splitlines() if line.startswith("[rank"))
    assert lines == [f"[rank {r}] {{'rank': {r}, 'square': {r * r}}}" for r in range(3)]


@pytest.mark.parametrize("script", ["no_such_job.py", "tests/no_such_job.py"])
def test_missing_script_path_is_an_error_not_source(script):
    with pytest.raises(FileNotFoundError, match="no_such_job.py"):
        run_mpi(script, 2)


def test_missing_path_object_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_mpi(tmp_path / "missing.py", 2)


@pytest.mark.parametrize("nprocs", [0, -1, 1.5, True])
def test_bad_nprocs(nprocs):
    with pytest.raises(ValueError, match="nprocs"):
        run_mpi("pass\n", nprocs)
