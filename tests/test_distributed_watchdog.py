"""The watchdog (issue 13): a rank left waiting ends the job in seconds, naming where; Ctrl-C says
where every rank was; nothing collective runs at exit."""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minidl.distributed as dist
from minidl.distributed import watchdog
from minidl.distributed.steps import Recv, Round, Send
from minidl.testing import run_mpi
from minidl.testing.mpi import _kill_job, find_mpiexec

SCRIPTS = Path(__file__).parent / "mpi_scripts"
TIMED = {"MINIDL_TIMEOUT": "2"}


# --- on real ranks --------------------------------------------------------------------------

@pytest.mark.mpi
@pytest.mark.parametrize("case, waited_in", [
    ("sleeps", "allreduce of 1000 x float32 (4000 bytes), algorithm 'recursive_doubling', "
               "on 2 ranks, in its agreement check"),
    ("exits", "allreduce of 1000 x float32 (4000 bytes), algorithm 'ring', on 2 ranks, "
              "in its agreement check"),
    ("skips_unchecked", "algorithm 'ring', on 2 ranks, round 0: waiting for a message from "
                        "rank 1; sending to rank 1"),
    ("iallreduce", "round 0: waiting for a message from rank 1; sending to rank 1"),
])
def test_a_rank_left_waiting_ends_the_job_naming_the_collective_round_and_peer(case, waited_in):
    env = TIMED if case != "skips_unchecked" else {}  # that one calls set_timeout(2) itself
    result = run_mpi(SCRIPTS / "watchdog_cases.py", 2, args=[case], env=env, timeout=60,
                     check=False)
    assert result.returncode == watchdog.EXIT_STATUS, result.stderr
    assert "minidl: rank 0 timed out (timeout 2 s) after waiting" in result.stderr
    assert waited_in in result.stderr
    assert "This rank's program was at:" in result.stderr and "watchdog_cases.py" in result.stderr
    assert f"Ending the job (exit status {watchdog.EXIT_STATUS})" in result.stderr


@pytest.mark.mpi
@pytest.mark.parametrize("overlap", ["overlap", "no_overlap"])
def test_a_rank_that_skips_the_last_step_is_caught_by_the_watchdog(overlap):
    result = run_mpi(SCRIPTS / "watchdog_cases.py", 2, args=["ddp_skipped_last_step", overlap],
                     env=TIMED, timeout=60, check=False)
    assert result.returncode == watchdog.EXIT_STATUS, result.stderr
    assert "DistributedDataParallel's step check at step 2" in result.stderr


@pytest.mark.mpi
def test_without_a_timeout_a_wait_is_not_cut_short():
    # rank 1 sleeps 3 s before joining: with MINIDL_TIMEOUT=0, nobody times out.
    script = """
        import time
        import numpy as np
        from mpi4py import MPI
        import minidl.distributed as dist
        from minidl.testing import report
        if MPI.COMM_WORLD.rank == 1:
            time.sleep(3)
        report((dist.get_timeout(), float(dist.allreduce(np.ones(4))[0])))
    """
    results = run_mpi(script, 2, env={"MINIDL_TIMEOUT": "0"}, timeout=60).results
    assert results == [(None, 2.0), (None, 2.0)]


@pytest.mark.mpi
def test_ctrl_c_makes_every_rank_say_where_it_was_and_ends_the_job():
    # Both ranks are blocked inside MPI (rank 0 in minidl's all-reduce, rank 1 in a receive
    # of its own), where Python's KeyboardInterrupt never arrives: before the watchdog, the
    # first Ctrl-C did nothing.
    env = {k: v for k, v in os.environ.items() if k != "MINIDL_TIMEOUT"}
    env["OMP_NUM_THREADS"] = "1"
    command = [find_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py",
               str(SCRIPTS / "watchdog_cases.py"), "ready_then_stuck"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           start_new_session=True)
    try:
        seen, deadline = b"", time.monotonic() + 60
        while not (b"ready 0" in seen and b"ready 1" in seen):  # mpiexec may interleave them
            left = deadline - time.monotonic()
            assert left > 0, f"the ranks were not ready within 60 s: {seen!r}"
            if select.select([job.stdout], [], [], left)[0]:
                more = os.read(job.stdout.fileno(), 4096)
                assert more, f"the job ended before both ranks were ready: {seen!r}"
                seen += more
        time.sleep(1.5)  # rank 0 is inside its all-reduce by then
        os.kill(job.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends mpiexec
        _, stderr = job.communicate(timeout=30)
        stderr = stderr.decode()
    finally:
        if job.poll() is None:
            _kill_job(job.pid)
    assert job.returncode == 130, stderr
    assert ("minidl: rank 0 was interrupted (Ctrl-C) after waiting" in stderr
            and "allreduce of 1000 x float32" in stderr), stderr
    assert "minidl: rank 1 was interrupted (Ctrl-C), not waiting in minidl's communication" \
        in stderr
    assert "comm.Recv(buf, source=0, tag=5)" in stderr  # where rank 1 was, in its own code


@pytest.mark.mpi
@pytest.mark.parametrize("collect", ["gc", "nogc"])
@pytest.mark.parametrize("overlap", ["overlap", "no_overlap"])
def test_ddp_wrappers_built_in_a_loop_exit_at_once(collect, overlap):
    # Issue 13's twelve lines: closing at exit whatever each rank's garbage collector left
    # alive made the ranks call different collectives, and hang.
    result = run_mpi(SCRIPTS / "ddp_loop_exit.py", 2, args=[collect, overlap, "idle"],
                     timeout=60)
    assert result.returncode == 0
    assert "never closed" not in result.stderr  # they never trained: nothing went unchecked


@pytest.mark.mpi
def test_ddp_wrappers_that_trained_and_were_never_closed_are_named_in_one_line():
    result = run_mpi(SCRIPTS / "ddp_loop_exit.py", 2, args=["gc", "overlap", "train"],
                     timeout=60)
    lines = [line for line in result.stderr.splitlines() if "never closed" in line]
    assert lines == [
        "minidl: 3 DistributedDataParallel wrappers trained (1, 1, 1 steps) and never closed: "
        "released at exit without checking that every rank ran as many steps (call "
        "ddp.close() on every rank for that check)"
    ]


# --- in one process -------------------------------------------------------------------------

@pytest.fixture
def no_timeout():
    before = dist.get_timeout()
    yield
    watchdog._timeout = before


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "soon", [3]])
def test_set_timeout_refuses_what_is_not_a_number_of_seconds(bad, no_timeout):
    with pytest.raises(ValueError, match="set_timeout: seconds must be"):
        dist.set_timeout(bad)


def test_set_timeout_zero_or_none_is_off(no_timeout):
    dist.set_timeout(0)
    assert dist.get_timeout() is None
    dist.set_timeout(None)
    assert dist.get_timeout() is None


def test_a_bad_environment_variable_is_named():
    result = subprocess.run([sys.executable, "-c", "import minidl.distributed"],
                            env={**os.environ, "MINIDL_TIMEOUT": "five"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "MINIDL_TIMEOUT must be a number of seconds (0 for off), got 'five'" in result.stderr


def test_a_wait_is_described_by_its_collective_round_and_peers():
    call = dist.collectives._validate("broadcast", np.zeros(6, np.float64), None, "binomial", 0,
                                      None, None)
    at = watchdog.At(1, Round(sends=(Send(peer=3, chunks=range(1), start=0, stop=6),),
                             recvs=(Recv(peer=1, chunks=range(1), start=0, stop=6, reduce=False),)))
    text = watchdog.describe(call, at)
    assert text.startswith("broadcast of 6 x float64 (48 bytes), algorithm 'binomial', on 1 ranks")
    assert text.endswith(", root 0, round 1: waiting for a message from rank 1; sending to rank 3")
    assert watchdog.describe("a receive of my own", "agreement check") == (
        "a receive of my own, in its agreement check")


def test_watching_marks_the_wait_and_restores_the_one_around_it():
    assert watchdog.WATCH.state is None
    with dist.watching("outer"):
        with dist.watching("inner"):
            assert watchdog.WATCH.state[0] == "inner"
            assert "was asked after waiting 3.0 s or more in inner." in watchdog.report(
                "was asked", 3.0)
        assert watchdog.WATCH.state[0] == "outer"
    assert watchdog.WATCH.state is None
    assert "not waiting in minidl's communication" in watchdog.report("was asked")


def test_a_collective_leaves_no_wait_marked_even_when_it_raises():
    with pytest.raises(ValueError):
        dist.allreduce(np.zeros(3), algorithm="butterfly")
    dist.allreduce(np.zeros(3))
    assert watchdog.WATCH.state is None and watchdog.WATCH.round is None
