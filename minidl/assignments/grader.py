"""The grader: each task's marked tests, run in a tree, scored, never hanging.

The chosen assignments' test files run in one pytest process, in the tree being
graded (``PYTHONPATH`` puts its ``minidl`` first, so a starter copy without
compiled kernels runs the NumPy references), with a small plugin
(:mod:`~minidl.assignments.grade_plugin`) reporting each test's task and
outcome as it goes. The grader watches the clock of the task whose tests are
running: past the task's ``timeout`` it kills pytest and everything it
started (``mpiexec`` and its ranks included, found by a token in their
environment), scores that task 0, names it, and runs the rest again without
it. A task scores ``points * passed / total``; skipped tests (an optional
cross-check whose library is missing) count in neither.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from minidl.assignments.registry import ASSIGNMENTS, Assignment, Task

COLLECT_TIMEOUT = 120.0
"""Seconds pytest may take to import and collect an assignment's tests."""
_POLL = 0.05
_TOKEN = "MINIDL_GRADE_JOB"


@dataclass
class TaskResult:
    """One row of the grade table.

    Attributes
    ----------
    assignment, task : str
    passed, total : int
        Tests passed and run (skipped ones not counted).
    points, max_points : float
    status : str
        ``"ok"``; ``"timeout"`` (killed, scored 0); ``"error"`` (its tests
        could not be collected, scored 0); ``"missing"`` (no test has its marker).
    note : str
        What went wrong, for the table's footnotes.
    """

    assignment: str
    task: str
    passed: int
    total: int
    points: float
    max_points: float
    status: str = "ok"
    note: str = ""

    def as_json(self) -> dict:
        """The gradebook record: exactly the documented keys."""
        return {"assignment": self.assignment, "task": self.task, "passed": self.passed,
                "total": self.total, "points": self.points, "max_points": self.max_points}


def _plugin_dir() -> Path:
    """A fresh folder holding the plugin as ``minidl_grade_plugin.py``."""
    folder = Path(tempfile.mkdtemp(prefix="minidl-grade-"))
    shutil.copyfile(Path(__file__).with_name("grade_plugin.py"), folder / "minidl_grade_plugin.py")
    return folder


def _processes_with(token: str) -> list[int]:
    """Live processes whose environment holds ``token`` (Linux: reads /proc; else none)."""
    found = []
    needle = token.encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from ``ps`` (Linux and macOS); ``[]`` if ``ps`` fails."""
    try:
        listing = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True,
                                 text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    children: dict[int, list[int]] = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(fields[0]))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_job(proc: subprocess.Popen, token: str) -> None:
    """Kill ``proc``'s process group and every process carrying ``token``, and reap ``proc``.

    ``mpiexec`` runs in a session of its own (see :func:`minidl.testing.run_mpi`),
    so killing pytest's group alone would leave the ranks running. On Linux
    they are found by the token that they all inherit in their environment,
    wherever they were reparented; elsewhere, as ``proc``'s descendants while
    it is still alive.
    """
    for _ in range(3):
        family = _descendants(proc.pid) if proc.poll() is None else []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in family + _processes_with(f"{_TOKEN}={token}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if not _processes_with(f"{_TOKEN}={token}"):
            return
        time.sleep(0.1)


def _read_events(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete JSON lines written to ``path`` after byte ``offset``, and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()], offset + end


@dataclass
class _Run:
    """What one pytest process told the grader."""

    tests: dict[str, str | None]  # nodeid -> task marker
    outcomes: dict[str, str]  # nodeid -> passed / failed / skipped
    collected: bool
    hung: str | None  # the marker of the task that ran out of time
    collect_errors: list[str]
    output: str


def _run_pytest(tree: Path, test_files: list[str], tasks: list[Task], excluded: set[str],
                plugin: Path, quiet: bool) -> _Run:
    """Run ``test_files`` in ``tree`` once, without the tasks whose markers are ``excluded``."""
    token = uuid.uuid4().hex
    timeouts = {t.marker: t.timeout for t in tasks}
    with tempfile.TemporaryDirectory(prefix="minidl-grade-run-") as scratch:
        events = Path(scratch) / "events.jsonl"
        log = Path(scratch) / "pytest.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(plugin), str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.update({"MINIDL_GRADE_EVENTS": str(events), _TOKEN: token,
                    "MINIDL_GRADE_MARKERS": ",".join(timeouts)})
        # Hypothesis's plugin alone takes most of pytest's start-up; no task test needs it.
        command = [sys.executable, "-m", "pytest", *test_files, "-p", "minidl_grade_plugin",
                   "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
                   "--strict-markers", "--continue-on-collection-errors", "-o", "addopts=",
                   "-W", "ignore::UserWarning:minidl.kernels"]
        if excluded:
            command += ["-m", "not (" + " or ".join(sorted(excluded)) + ")"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, cwd=tree, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            run = _Run({}, {}, False, None, [], "")
            offset, started = 0, time.monotonic()
            spent: dict[str | None, float] = {}
            current: tuple[str, float] | None = None  # test running, since when
            try:
                while True:
                    finished = proc.poll() is not None
                    new, offset = _read_events(events, offset)
                    now = time.monotonic()
                    for e in new:
                        if e["event"] == "collected":
                            run.tests, run.collected = e["tests"], True
                        elif e["event"] == "collect_error":
                            run.collect_errors.append(f"{e['where']}: {e['message']}")
                        elif e["event"] == "start":
                            current = (e["test"], now)
                        elif e["event"] == "done":
                            run.outcomes[e["test"]] = e["outcome"]
                            if current is not None:
                                task = run.tests.get(current[0])
                                spent[task] = spent.get(task, 0.0) + now - current[1]
                            current = None
                    if finished:
                        break
                    if not run.collected and now - started > COLLECT_TIMEOUT:
                        run.collect_errors.append(f"pytest did not collect {' '.join(test_files)} "
                                                  f"within {COLLECT_TIMEOUT:g} s")
                        kill_job(proc, token)
                        break
                    if current is not None:
                        task = run.tests.get(current[0])
                        limit = timeouts.get(task, COLLECT_TIMEOUT) if task else COLLECT_TIMEOUT
                        if spent.get(task, 0.0) + now - current[1] > limit:
                            run.hung = task
                            kill_job(proc, token)
                            break
                    time.sleep(_POLL)
            finally:
                if proc.poll() is None:
                    kill_job(proc, token)
        run.output = log.read_text(errors="replace")
    if not quiet and (run.collect_errors or run.hung):
        print(run.output[-4000:], file=sys.stderr)
    return run


def grade(tree: Path, assignments: tuple[Assignment, ...] | list[Assignment] = ASSIGNMENTS,
          quiet: bool = True) -> list[TaskResult]:
    """Run the tests of ``assignments`` in ``tree`` (one pytest process) and score each task.

    Parameters
    ----------
    tree : pathlib.Path
        A repository root holding ``minidl/`` and the assignments' test files.
    assignments : sequence of Assignment, default every assignment
    quiet : bool, default True
        ``False`` prints pytest's output when something timed out or failed to collect.

    Returns
    -------
    list of TaskResult
        One per task, assignment by assignment, in the registry's order.
    """
    tree = Path(tree).resolve()
    tasks = [t for a in assignments for t in a.tasks]
    files = list(dict.fromkeys(a.tests for a in assignments))
    by_marker = {t.marker: t for t in tasks}
    hung: dict[str, str] = {}
    plugin = _plugin_dir()
    try:
        while True:
            run = _run_pytest(tree, files, tasks, set(hung), plugin, quiet)
            if run.hung is None or run.hung in hung or run.hung not in by_marker:
                break
            task = by_marker[run.hung]
            hung[run.hung] = f"timed out after {task.timeout:g} s: killed, scored 0"
    finally:
        shutil.rmtree(plugin, ignore_errors=True)
    return [_score(a, task, run, hung) for a in assignments for task in a.tasks]


def _score(assignment: Assignment, task: Task, run: _Run, hung: dict[str, str]) -> TaskResult:
    """One task's row, from the last run and the tasks that hung."""
    tests = [t for t, m in run.tests.items() if m == task.marker]
    outcomes = [run.outcomes.get(t, "failed") for t in tests]
    passed = sum(o == "passed" for o in outcomes)
    total = sum(o != "skipped" for o in outcomes)
    status, note = "ok", ""
    if task.marker in hung:
        status, note, passed, total = "timeout", hung[task.marker], 0, max(total, 1)
    elif run.hung == task.marker:  # hung again after a rerun: give up on it
        status, note, passed = "timeout", f"timed out after {task.timeout:g} s", 0
    elif not tests and (run.collect_errors or not run.collected):
        status, note = "error", "; ".join(run.collect_errors)[:300] or "no tests collected"
    elif not tests:
        status, note = "missing", f"no test in {assignment.tests} is marked {task.marker}"
    elif "mpi-timeout" in outcomes:  # failed, and named: a job of ranks that hung was killed
        hung_tests = [t.split("::")[-1] for t, o in zip(tests, outcomes) if o == "mpi-timeout"]
        status = "timeout"
        note = (f"{len(hung_tests)} test(s) failed because their MPI job ran past its timeout "
                f"and was killed (a hang, or far too slow): {', '.join(hung_tests)}"[:300])
    points = round(task.points * passed / total, 2) if total else 0.0
    return TaskResult(assignment.name, task.id, passed, total, points, task.points, status, note)


def grade_assignment(tree: Path, assignment: Assignment, quiet: bool = True) -> list[TaskResult]:
    """:func:`grade` for one assignment."""
    return grade(tree, [assignment], quiet)


def format_table(results: list[TaskResult]) -> str:
    """The grade table: assignment, task, tests passed/total, points; then a total and notes."""
    rows = [("assignment", "task", "tests", "points")]
    for r in results:
        rows.append((r.assignment, r.task, f"{r.passed}/{r.total}",
                     f"{r.points:g}/{r.max_points:g}"))
    total = sum(r.points for r in results)
    most = sum(r.max_points for r in results)
    rows.append(("total", "", "", f"{total:g}/{most:g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0 or k == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    for r in results:
        if r.status != "ok":
            lines.append(f"{r.assignment}/{r.task}: {r.status}: {r.note}")
    return "\n".join(lines)


def write_json(results: list[TaskResult], path: Path) -> None:
    """Write the gradebook: a JSON list of objects with the keys ``assignment``, ``task``,
    ``passed``, ``total``, ``points`` and ``max_points``."""
    Path(path).write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
