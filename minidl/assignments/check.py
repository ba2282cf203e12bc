"""``check``: the instructor's proof that the kit is sound.

1. Every task has a solution region and every region a task of the registry.
2. On the solution (this checkout) every task's tests pass.
3. In a temporary starter copy, stripping one task at a time fails at least
   one of that task's own tests and no test of the other tasks of its
   assignment (except those that, in the registry, build on it).

Two workers run side by side, each with a starter copy of its own, one pytest
process for the solution and one per stripped task.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from minidl.assignments.grader import TaskResult, grade, grade_assignment
from minidl.assignments.regions import scan, strip_tree
from minidl.assignments.registry import ASSIGNMENTS, Assignment, Task
from minidl.assignments.starter import copy_tree, repository_root


def _restore(tree: Path, originals: dict[str, str]) -> None:
    for rel, text in originals.items():
        (tree / rel).write_text(text, encoding="utf-8")


def _judge_stripped(assignment: Assignment, task: Task, results: list[TaskResult]) -> list[str]:
    """What is wrong with ``assignment``'s results when only ``task`` is stripped."""
    problems = []
    for r in results:
        if r.task == task.id:
            if r.total == 0 or r.passed == r.total:
                problems.append(f"stripping {task.id} fails none of its own tests "
                                f"({r.passed}/{r.total} pass)")
        elif task.id not in assignment.task(r.task).builds_on and r.passed != r.total:
            problems.append(f"stripping {task.id} also fails {r.total - r.passed} of "
                            f"{r.total} tests of {r.task}" + (f" ({r.note})" if r.note else ""))
    return problems


def check(root: Path | None = None, assignments: tuple[Assignment, ...] = ASSIGNMENTS,
          workers: int = 2, echo: Callable[[str], None] = print) -> bool:
    """Run the three checks of the module docstring on the repository at ``root``.

    Parameters
    ----------
    root : pathlib.Path, optional
        A checkout with the solutions; default :func:`~minidl.assignments.starter.repository_root`.
    assignments : tuple of Assignment
    workers : int, default 2
        Starter copies tested side by side.
    echo : callable
        Receives one line per finding.

    Returns
    -------
    bool
        Whether every check held.
    """
    root = Path(root) if root is not None else repository_root()
    ok = True
    regions = scan(root)
    tasks = {t.id for a in assignments for t in a.tasks}
    for task_id in sorted(tasks - {r.task for r in regions}):
        ok = False
        echo(f"FAIL {task_id}: no '# BEGIN SOLUTION {task_id}' region in minidl/")
    for r in regions:
        if r.task not in tasks:
            ok = False
            echo(f"FAIL {r.path}:{r.begin + 1}: region of unknown task {r.task!r}")

    jobs: queue.Queue = queue.Queue()
    jobs.put((None, None))
    stripped = [(a, t) for a in assignments for t in a.tasks]
    for job in stripped:
        jobs.put(job)
    solution: dict[str, list[TaskResult]] = {}
    lines: dict[tuple[str, str], list[str]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="minidl-check-"))

    def work(tree: Path) -> None:
        while True:
            try:
                assignment, task = jobs.get_nowait()
            except queue.Empty:
                return
            if task is None:  # the solution, in the checkout itself
                for r in grade(root, assignments):
                    solution.setdefault(r.assignment, []).append(r)
                continue
            originals = strip_tree(tree, {task.id})
            try:
                results = grade_assignment(tree, assignment)
            finally:
                _restore(tree, originals)
            lines[assignment.name, task.id] = _judge_stripped(assignment, task, results)

    try:
        copies = [scratch / f"starter{i}" for i in range(max(1, workers))]
        for tree in copies:
            copy_tree(tree, root)
        threads = [threading.Thread(target=work, args=(tree,)) for tree in copies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for assignment in assignments:
        for r in solution.get(assignment.name, []):
            if r.total == 0 or r.passed != r.total:
                ok = False
                echo(f"FAIL {r.assignment}/{r.task}: on the solution {r.passed}/{r.total} tests "
                     "pass" + (f" ({r.note})" if r.note else ""))
            else:
                echo(f"ok   {r.assignment}/{r.task}: {r.passed}/{r.total} tests pass on the "
                     "solution")
        if assignment.name not in solution:
            ok = False
            echo(f"FAIL {assignment.name}: the run on the solution did not finish")
    for assignment, task in stripped:
        found = lines.get((assignment.name, task.id))
        if found is None:
            ok = False
            echo(f"FAIL {assignment.name}/{task.id}: the stripped run did not finish")
        elif found:
            ok = False
            for problem in found:
                echo(f"FAIL {assignment.name}/{task.id}: {problem}")
        else:
            echo(f"ok   {assignment.name}/{task.id}: stripped, it fails its own tests only")
    return ok
