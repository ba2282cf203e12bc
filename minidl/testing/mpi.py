"""Run a script on real MPI ranks from an ordinary (single-process) test.

A multi-rank test starts ``mpiexec -n P python -m mpi4py SCRIPT`` in a
subprocess, waits for it with a timeout, and reads back what each rank handed
to :func:`report`. pytest itself never runs under ``mpiexec``: one failing rank
would desynchronise every later test.

Two things keep a broken job from hanging the test run:

- ``python -m mpi4py`` aborts every rank as soon as one raises, so an
  exception ends the job with a non-zero exit instead of a deadlock;
- the job starts in its own session, and on timeout the whole job is killed:
  its process group and every process descended from ``mpiexec``, and
  :func:`run_mpi` returns only once none of them is left. The process group
  alone is not enough: MPICH's launcher (hydra) starts its proxy and every
  rank with ``setsid()``, each in a session of its own, so ``killpg`` reaches
  ``mpiexec`` only. The proxy does kill its ranks once ``mpiexec`` is gone,
  but not what the ranks started, and the helper does not rely on it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_ENV = "MINIDL_MPI_RESULTS"
"""Environment variable naming the directory where :func:`report` writes."""

_TAIL_CHARS = 3000  # how much of stdout and stderr an error message quotes
_KILL_GRACE_S = 10.0  # how long to wait for killed processes to disappear


@dataclass
class MPIResult:
    """What a finished :func:`run_mpi` job left behind.

    Attributes
    ----------
    returncode : int
        Exit status of ``mpiexec``: 0 when every rank exited cleanly; negative
        (``-signal``) when the job was killed.
    stdout : str
        Everything the ranks printed to standard output, interleaved as it
        arrived.
    stderr : str
        Everything the ranks (and ``mpiexec``) printed to standard error.
    results : list
        One entry per rank, in rank order: the object that rank passed to
        :func:`report`, or ``None`` if it reported nothing.
    nprocs : int
        The number of ranks the job was started with.
    """

    returncode: int
    stdout: str
    stderr: str
    results: list[Any]
    nprocs: int


class MPIJobError(RuntimeError):
    """An MPI job started by :func:`run_mpi` exited with a non-zero status.

    The message quotes the exit status and the tail of the job's output; the
    whole of it is in :attr:`result`.

    Attributes
    ----------
    result : MPIResult
        The job's exit status, full output and whatever the ranks reported.
    """

    def __init__(self, message: str, result: MPIResult) -> None:
        super().__init__(message)
        self.result = result

    @property
    def returncode(self) -> int:
        """Exit status of ``mpiexec``."""
        return self.result.returncode

    @property
    def stdout(self) -> str:
        """The job's full standard output."""
        return self.result.stdout

    @property
    def stderr(self) -> str:
        """The job's full standard error."""
        return self.result.stderr


class MPITimeoutError(MPIJobError):
    """An MPI job started by :func:`run_mpi` ran past its timeout and was killed.

    When this is raised, every process of the job (``mpiexec``, the hydra
    proxy, every rank and anything they started) has been killed and is gone.
    :attr:`result` holds the output printed before the kill.
    """


def find_mpiexec() -> str:
    """Return the ``mpiexec`` that :func:`run_mpi` launches.

    The one next to the running Python comes first (the ``mpich`` wheel puts it
    in the virtual environment's ``bin``), then the first ``mpiexec`` on
    ``PATH`` (a cluster's own MPI).

    Raises
    ------
    FileNotFoundError
        If neither exists.
    """
    beside_python = Path(sys.executable).parent / "mpiexec"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which("mpiexec")
    if on_path is not None:
        return on_path
    raise FileNotFoundError(
        f"no mpiexec found: looked next to the Python interpreter ({beside_python}) "
        "and on PATH. Install MPI into this environment with `pip install mpich`, "
        "or load your cluster's MPI module."
    )


def run_mpi(
    script: str | os.PathLike[str],
    nprocs: int,
    *,
    args: Sequence[object] = (),
    timeout: float = 60.0,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> MPIResult:
    """Run ``script`` on ``nprocs`` MPI ranks and collect what each rank reports.

    Runs ``mpiexec -n NPROCS python -m mpi4py SCRIPT *ARGS`` in a new session
    and waits for it. Inside the script each rank may call :func:`report` once
    with any picklable object; ``results[r]`` is what rank ``r`` reported.

    Parameters
    ----------
    script : str or os.PathLike
        A path to an existing Python file, or Python source text (any string
        that is not the path of an existing file). Source text is dedented and
        written to a temporary file. A one-line string ending in ``.py`` that
        names no file is taken for a mistyped path, not source.
    nprocs : int
        Number of ranks, at least 1. More ranks than cores is fine.
    args : sequence, optional
        Command-line arguments for the script (``sys.argv[1:]`` on every rank);
        each is converted with ``str``.
    timeout : float, optional
        Seconds to wait for the whole job. When they run out, every process of
        the job is killed and :class:`MPITimeoutError` is raised, whatever
        ``check`` says.
    check : bool, optional
        If true (the default), a non-zero exit raises :class:`MPIJobError`; if
        false, it is returned in :attr:`MPIResult.returncode`.
    env : mapping, optional
        Environment variables set for the job, over a copy of ``os.environ``.
        ``OMP_NUM_THREADS`` is 1 unless set here or already in the
        environment: ranks share the cores, so threads per rank only compete.

    Returns
    -------
    MPIResult
        Exit status, captured output and one reported result per rank.

    Raises
    ------
    MPIJobError
        If the job exits non-zero and ``check`` is true.
    MPITimeoutError
        If the job runs longer than ``timeout`` seconds.
    FileNotFoundError
        If ``script`` looks like a path but names no file, or if no
        ``mpiexec`` can be found.
    ValueError
        If ``nprocs`` < 1 or ``timeout`` <= 0.

    Examples
    --------
    >>> from minidl.testing import run_mpi
    >>> job = run_mpi('''
    ...     from mpi4py import MPI
    ...     from minidl.testing import report
    ...     report(MPI.COMM_WORLD.rank * 10)
    ... ''', nprocs=3)
    >>> job.results
    [0, 10, 20]
    """
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"nprocs must be an integer >= 1, got {nprocs!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    mpiexec = find_mpiexec()

    with tempfile.TemporaryDirectory(prefix="minidl-mpi-") as workdir:
        script_file = _script_file(script, Path(workdir))
        results_dir = Path(workdir) / "results"
        results_dir.mkdir()

        job_env = {**os.environ, **(env or {})}
        job_env.setdefault("OMP_NUM_THREADS", "1")
        job_env[RESULTS_ENV] = str(results_dir)

        command = [mpiexec, "-n", str(nprocs), sys.executable, "-m", "mpi4py", str(script_file)]
        command += [str(a) for a in args]

        timed_out = False
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=job_env,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_job(proc.pid)
            # The pipes close once every writer is dead; this returns the
            # output printed before the kill.
            stdout, stderr = proc.communicate(timeout=_KILL_GRACE_S)
        except BaseException:  # Ctrl-C, or pytest-timeout: never leave ranks behind
            _kill_job(proc.pid)
            proc.wait()
            raise

        result = MPIResult(
            returncode=proc.returncode,
            stdout=stdout,
            stderr=stderr,
            results=[_load_result(results_dir, rank) for rank in range(nprocs)],
            nprocs=nprocs,
        )

    if timed_out:
        raise MPITimeoutError(
            f"MPI job ({nprocs} ranks, {script_file.name}) timed out after {timeout:g} s; "
            "its whole process group (mpiexec, the hydra proxy and every rank) was killed. "
            "A timeout usually means a deadlock: a send or receive with no matching partner, "
            "or a collective that not every rank called.\n" + _output_tail(result),
            result,
        )
    if check and result.returncode != 0:
        raise MPIJobError(
            f"MPI job ({nprocs} ranks, {script_file.name}) exited with return code "
            f"{result.returncode}.\n" + _output_tail(result),
            result,
        )
    return result


def report(obj: Any) -> None:
    """Send ``obj`` from this rank back to the :func:`run_mpi` that started the job, or print it.

    Under :func:`run_mpi`, pickles ``obj`` (NumPy arrays are welcome) to a
    file named after this rank of ``MPI.COMM_WORLD``; :func:`run_mpi`
    returns it as ``results[rank]``. If a rank reports twice, the last
    report wins.

    Anywhere else (the script run by hand with ``mpiexec -n P python -m
    mpi4py script.py``, or with plain ``python``), there is no one to send
    it to, so it prints ``obj`` instead, each line prefixed with the rank,
    as in ``[rank 0] {'loss': 0.25}``. So one script serves both as a test's
    job and as a program a student runs.

    Parameters
    ----------
    obj : object
        Anything picklable (under :func:`run_mpi`); anything at all otherwise.

    Examples
    --------
    Inside a script started with ``run_mpi(script, nprocs=2)``:

    >>> import numpy as np
    >>> from mpi4py import MPI
    >>> from minidl.testing import report
    >>> report({"rank": MPI.COMM_WORLD.rank, "grad": np.arange(3.0)})  # doctest: +SKIP

    Outside ``run_mpi`` it prints (rank 0 when MPI was never started):

    >>> report({"loss": 0.25})
    [rank 0] {'loss': 0.25}
    """
    results_dir = os.environ.get(RESULTS_ENV)
    if not results_dir:
        prefix = f"[rank {_rank_if_started()}] "
        print(textwrap.indent(str(obj), prefix, lambda line: True), flush=True)
        return
    from mpi4py import MPI  # imported here: importing minidl.testing must not start MPI

    rank = MPI.COMM_WORLD.Get_rank()
    final = Path(results_dir) / f"rank{rank}.pkl"
    partial = final.with_suffix(".tmp")
    with open(partial, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    # Rename last, so run_mpi never reads a half-written file from a killed rank.
    os.replace(partial, final)


def _rank_if_started() -> int:
    """This process's rank in ``MPI.COMM_WORLD`` if MPI is running, else 0.

    Printing a report must not start MPI in a program that never did.
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return 0
    return mpi.COMM_WORLD.Get_rank()


def _script_file(script: str | os.PathLike[str], workdir: Path) -> Path:
    """The file to run: ``script`` itself if it is a file, else its text saved in ``workdir``."""
    if isinstance(script, os.PathLike):
        path = Path(script)
        if not path.is_file():
            raise FileNotFoundError(f"run_mpi: script file {path} does not exist")
        return path.resolve()
    if not isinstance(script, str):
        raise TypeError(
            f"run_mpi: script must be a path or source text, got {type(script).__name__}"
        )
    if os.path.isfile(script):
        return Path(script).resolve()
    if "\n" not in script and script.strip().endswith(".py"):
        raise FileNotFoundError(
            f"run_mpi: script file {script!r} does not exist (a one-line string ending "
            "in .py is taken for a path; pass source text with a newline to run it as code)"
        )
    path = workdir / "mpi_job.py"
    path.write_text(textwrap.dedent(script))
    return path


def _load_result(results_dir: Path, rank: int) -> Any:
    """What ``rank`` passed to :func:`report`, or ``None``."""
    path = results_dir / f"rank{rank}.pkl"
    if not path.exists():
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


def _output_tail(result: MPIResult) -> str:
    """The last few thousand characters of stdout and stderr, for an error message."""

    def tail(text: str) -> str:
        text = text.rstrip()
        if not text:
            return "    (empty)"
        if len(text) > _TAIL_CHARS:
            text = "...\n" + text[-_TAIL_CHARS:]
        return textwrap.indent(text, "    ")

    return (
        f"--- stdout (tail) ---\n{tail(result.stdout)}\n"
        f"--- stderr (tail) ---\n{tail(result.stderr)}"
    )


# Killing a job ----------------------------------------------------------------
#
# A process is named by (pid, start time): a pid alone may be reused by an
# unrelated process once the original is dead. Both come from /proc/PID/stat
# (Linux); elsewhere only the process group is killed.


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of ``pid`` from /proc, or ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may itself contain spaces and ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), fields[19]


def _process_tree(root: int) -> dict[int, str]:
    """``root`` and every live process descended from it, as {pid: start time}."""
    children: dict[int, list[int]] = {}
    start_times: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                _state, ppid, start = stat
                children.setdefault(ppid, []).append(int(entry))
                start_times[int(entry)] = start
    tree: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in start_times and pid not in tree:
            tree[pid] = start_times[pid]
            todo.extend(children.get(pid, []))
    return tree


def _alive(pid: int, start: str) -> bool:
    """Whether the process ``pid`` that started at ``start`` still runs (zombies count as gone)."""
    stat = _stat(pid)
    return stat is not None and stat[2] == start and stat[0] != "Z"


def _signal(pid: int, sig: signal.Signals, *, group: bool = False) -> None:
    """Send ``sig`` to process ``pid`` (or to process group ``pid``) if it still exists."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_job(root: int) -> None:
    """SIGKILL ``root`` (``mpiexec``), its process group and all its descendants, and wait.

    First every process of the tree is stopped (SIGSTOP), rescanning until no
    new one appears: a stopped process can neither fork nor exit, so the tree
    stops changing and cannot lose members to re-parenting. Then each is
    killed, and this waits until none is left.
    """
    _signal(root, signal.SIGSTOP, group=True)
    if not os.path.isdir("/proc"):
        _signal(root, signal.SIGKILL, group=True)
        return

    frozen: dict[int, str] = {}
    while True:
        new = {pid: start for pid, start in _process_tree(root).items() if pid not in frozen}
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        frozen.update(new)

    _signal(root, signal.SIGKILL, group=True)
    for pid, start in frozen.items():
        if _alive(pid, start):
            _signal(pid, signal.SIGKILL)

    # mpiexec is our child and stays a zombie until communicate() reaps it;
    # the rest are re-parented to init, which reaps them.
    deadline = time.monotonic() + _KILL_GRACE_S
    while any(_alive(pid, start) for pid, start in frozen.items()):
        if time.monotonic() > deadline:
            left = sorted(pid for pid, start in frozen.items() if _alive(pid, start))
            raise RuntimeError(
                f"run_mpi: processes {left} of the timed-out MPI job survived SIGKILL"
            )
        time.sleep(0.01)
