"""The course-assignment kit itself (issue 17): regions, starter, grader, check, command line.

The task tests live in tests/assignments/; here the kit is tested: ``check``
passes (the meta-test), every assignment's starter imports and leaves the
assignments that do not build on it passing, the grader scores the solution
in full and stripped tasks 0, kills a hanging task within its timeout, and
the command line keeps its exit codes and JSON keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from minidl.assignments.grader import format_table, grade, grade_assignment
from minidl.assignments.regions import RegionError, find_regions, scan, source_files, strip
from minidl.assignments.registry import ASSIGNMENTS, Assignment, Task, depends_on
from minidl.assignments.starter import tracked_files, write_starter

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m minidl.assignments ARGS`` in a subprocess, with a hang guard."""
    return subprocess.run([sys.executable, "-m", "minidl.assignments", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------- regions
SOURCE = textwrap.dedent('''\
    def f(x):
        """Docstring stays."""
        # BEGIN SOLUTION task-a: double it
        y = 2 * x
        return y
        # END SOLUTION


    class C:
        def g(self):
            # BEGIN SOLUTION task-b
            # the hint on the next line
            return 1
            # END SOLUTION
    ''')


def test_regions_are_found_with_their_hints():
    regions = find_regions(SOURCE, "m.py")
    assert [(r.task, r.hint, r.begin, r.end, r.indent) for r in regions] == [
        ("task-a", "double it", 2, 5, "    "),
        ("task-b", "the hint on the next line", 10, 13, "        "),
    ]


def test_strip_replaces_only_the_chosen_regions_with_a_stub_that_imports():
    text = strip(SOURCE, {"task-a"})
    assert 'raise NotImplementedError("Task task-a: double it")' in text
    assert "y = 2 * x" not in text and "Docstring stays." in text
    assert "# BEGIN SOLUTION task-b" in text and "return 1" in text
    namespace: dict = {}
    exec(compile(text, "m.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="Task task-a: double it"):
        namespace["f"](3)
    assert namespace["C"]().g() == 1


def test_a_long_hint_is_wrapped_and_quotes_survive():
    source = ('def f():\n    # BEGIN SOLUTION t: say "hi" ' + "x" * 90 +
              "\n    return 1\n    # END SOLUTION\n")
    text = strip(source, {"t"})
    assert max(len(line) for line in text.splitlines()) <= 100 or '"Task t' in text
    namespace: dict = {}
    exec(compile(text, "m.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match='say "hi"'):
        namespace["f"]()


@pytest.mark.parametrize(
    "source, message",
    [("# BEGIN SOLUTION a: h\nx = 1\n", "never closed"),
     ("x = 1\n# END SOLUTION\n", "no BEGIN"),
     ("# BEGIN SOLUTION a: h\n# BEGIN SOLUTION b: h\n# END SOLUTION\n", "do not nest"),
     ("def f():\n    # BEGIN SOLUTION a: h\n    return 1\n# END SOLUTION\n", "indented"),
     ("# BEGIN SOLUTION a\nx = 1\n# END SOLUTION\n", "no hint")],
)
def test_malformed_regions_are_named_with_file_and_line(source, message):
    with pytest.raises(RegionError, match=message) as info:
        find_regions(source, "bad.py")
    assert "bad.py:" in str(info.value)


def test_every_task_has_a_region_and_stripping_it_still_compiles():
    regions = scan(ROOT)
    tasks = {t.id for a in ASSIGNMENTS for t in a.tasks}
    assert {r.task for r in regions} == tasks
    for path in source_files(ROOT):
        text = path.read_text()
        if "BEGIN SOLUTION" in text:
            compile(strip(text, tasks), str(path), "exec")


def test_the_registry_is_consistent_and_its_markers_are_registered():
    pyproject = (ROOT / "pyproject.toml").read_text()
    names = [a.name for a in ASSIGNMENTS]
    assert len(set(names)) == len(names)
    ids = [t.id for a in ASSIGNMENTS for t in a.tasks]
    assert len(set(ids)) == len(ids)
    for a in ASSIGNMENTS:
        assert (ROOT / a.tests).is_file() and (ROOT / "docs" / f"{a.handout}.rst").is_file()
        assert set(a.builds_on) <= set(names) and not depends_on(a, a)
        for t in a.tasks:
            assert f'"{t.marker}:' in pyproject, f"marker {t.marker} not in pyproject.toml"
            assert set(t.builds_on) <= {u.id for u in a.tasks}


# ------------------------------------------------------------------- starter
def test_tracked_files_without_git_leave_build_outputs_out(tmp_path):
    for rel in ("minidl/__init__.py", "minidl/kernels/_im2col.cpython-311.so",
                "minidl/__pycache__/x.pyc", "csrc/im2col.pyx", "csrc/im2col.c", "README.md",
                "docs/tutorials/plot.rst", "docs/index.rst", "scratch.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert tracked_files(tmp_path) == ["README.md", "csrc/im2col.pyx", "docs/index.rst",
                                       "minidl/__init__.py"]


IMPORT_CHECK = textwrap.dedent('''\
    import warnings
    warnings.simplefilter("ignore")
    import minidl, minidl.nn, minidl.optim, minidl.parallel, minidl.distributed, minidl.train
    import minidl.kernels as K
    assert minidl.__file__.startswith(sys.argv[1]), minidl.__file__
    print(K.available())
    ''')


def _starter_breaks(assignment: Assignment, out: Path) -> list[str]:
    """What the starter of ``assignment`` alone, written to ``out``, breaks (nothing, we hope)."""
    stripped = write_starter(out, [assignment], root=ROOT)
    if not stripped:
        return [f"{assignment.name}: nothing stripped"]
    missing = [f for f in tracked_files(ROOT) if not (out / f).is_file()]
    if missing:  # pyproject.toml, setup.py, csrc/*.pyx, README.md...: what pip install -e . reads
        return [f"the starter of {assignment.name} lacks {missing}"]
    env = dict(os.environ, PYTHONPATH=str(out))
    job = subprocess.run([sys.executable, "-c", "import sys\n" + IMPORT_CHECK, str(out)],
                         cwd=out.parent, env=env, capture_output=True, text=True, timeout=120)
    if job.returncode != 0:
        return [f"the starter of {assignment.name} does not import: {job.stderr}"]
    if "'numpy'" not in job.stdout:  # no compiled kernels in a copy: the NumPy references
        return [f"the starter of {assignment.name} has kernels {job.stdout}"]
    others = [a for a in ASSIGNMENTS if a is not assignment and not depends_on(a, assignment)]
    return [f"the starter of {assignment.name} breaks {r.assignment}/{r.task}:\n"
            + format_table([r]) for r in grade(out, others) if not r.passed == r.total > 0]


@pytest.mark.mpi
def test_each_starter_imports_and_leaves_the_assignments_not_built_on_it_passing(tmp_path):
    with ThreadPoolExecutor(2) as pool:  # two at a time: most of it is waiting for subprocesses
        found = pool.map(lambda a: _starter_breaks(a, tmp_path / a.name), ASSIGNMENTS)
        problems = [line for lines in found for line in lines]
    assert problems == []


def test_a_non_empty_out_folder_is_refused_with_exit_2(tmp_path):
    (tmp_path / "mine.txt").write_text("homework")
    job = cli("starter", "--out", str(tmp_path))
    assert job.returncode == 2 and "not empty" in job.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


# ------------------------------------------------------------------- grader
@pytest.mark.mpi
def test_grade_gives_full_points_on_the_solution():
    job = cli("grade", "--assignment", "kernels", "data-parallel")
    assert job.returncode == 0, job.stderr
    rows = {line.split()[1]: line.split() for line in job.stdout.splitlines()
            if line.startswith(("kernels ", "data-parallel "))}
    expected = {t.id: t for a in ASSIGNMENTS if a.name in ("kernels", "data-parallel")
                for t in a.tasks}
    assert rows.keys() == expected.keys()
    for task_id, row in rows.items():
        passed, total = row[2].split("/")
        assert passed == total != "0" and row[3] == f"{expected[task_id].points:g}/" \
            f"{expected[task_id].points:g}"


@pytest.mark.mpi
def test_grade_scores_stripped_tasks_zero_and_writes_the_gradebook(tmp_path):
    out, book = tmp_path / "starter", tmp_path / "grades.json"
    assert cli("starter", "--out", str(out), "--assignment", "collectives").returncode == 0
    job = cli("grade", "--path", str(out), "--assignment", "collectives", "kernels",
              "--json", str(book))
    assert job.returncode == 0, job.stderr
    records = json.loads(book.read_text())
    assert all(set(r) == {"assignment", "task", "passed", "total", "points", "max_points"}
               for r in records)
    by_task = {r["task"]: r for r in records}
    for a in ASSIGNMENTS:
        if a.name not in ("collectives", "kernels"):
            continue
        for t in a.tasks:
            r = by_task[t.id]
            assert r["assignment"] == a.name and r["max_points"] == t.points and r["total"] > 0
            if a.name == "collectives":
                assert r["passed"] == 0 and r["points"] == 0, r
            else:
                assert r["passed"] == r["total"] and r["points"] == t.points, r
    assert "ring-allgather" in job.stdout and "0/30" in job.stdout


HANGING = '''
import os
import subprocess
import time

import pytest


@pytest.mark.fake_fine
def test_fine():
    assert True


@pytest.mark.fake_hangs
def test_hangs():
    # A child in a session of its own, as mpiexec is under run_mpi: killing
    # pytest's process group alone would leave it running.
    subprocess.Popen(["sleep", "600"], start_new_session=True)
    time.sleep(600)


@pytest.mark.fake_after
def test_after_the_hang():
    assert os.environ["MINIDL_GRADE_EVENTS"]


@pytest.mark.fake_mpi
def test_ranks_that_hang():
    from minidl.testing import run_mpi

    run_mpi("import time; time.sleep(600)", 2, timeout=3)  # killed: MPITimeoutError


@pytest.mark.fake_mpi
def test_ranks_that_finish():
    assert True
'''


def test_a_hanging_task_is_killed_scored_0_and_named(tmp_path, job_marker, processes_with):
    tests = tmp_path / "tests" / "assignments"
    tests.mkdir(parents=True)
    (tests / "test_fake.py").write_text(HANGING)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nmarkers = '
        '["fake_fine: x", "fake_hangs: x", "fake_after: x", "fake_mpi: x"]\n')
    fake = Assignment("fake", "a fake", "assignments/fake", "tests/assignments/test_fake.py", (
        Task("fine", 10, "fake_fine", timeout=30),
        Task("hangs", 20, "fake_hangs", timeout=3),
        Task("after", 30, "fake_after", timeout=30),
        Task("mpi", 40, "fake_mpi", multi_rank=True, timeout=60),
    ))
    os.environ["MINIDL_TEST_MARKER"] = job_marker  # inherited by the sleeping child
    try:
        results = {r.task: r for r in grade_assignment(tmp_path, fake)}
    finally:
        del os.environ["MINIDL_TEST_MARKER"]
    assert results["hangs"].points == 0 and results["hangs"].status == "timeout"
    assert "timed out after 3 s" in format_table(list(results.values()))
    assert (results["fine"].passed, results["fine"].points) == (1, 10)
    assert (results["after"].passed, results["after"].points) == (1, 30)
    # A test whose MPI job ran past its own timeout (run_mpi killed it) fails, and is named.
    mpi = results["mpi"]
    assert (mpi.passed, mpi.total, mpi.points, mpi.status) == (1, 2, 20, "timeout")
    assert "MPI job ran past its timeout and was killed" in mpi.note
    assert "test_ranks_that_hang" in mpi.note
    assert processes_with(job_marker) == []


# ------------------------------------------------------------------- command line
def test_list_shows_every_assignment_and_task_with_points():
    job = cli("list")
    assert job.returncode == 0
    for a in ASSIGNMENTS:
        assert f"{a.name}: " in job.stdout
        for t in a.tasks:
            assert any(line.split()[:2] == [t.id, f"{t.points:g}"]
                       for line in job.stdout.splitlines() if line.strip())


def test_list_shows_only_the_assignments_named():
    job = cli("list", "--assignment", "performance", "kernels")
    assert job.returncode == 0
    names = [line.split(":")[0] for line in job.stdout.splitlines() if not line.startswith(" ")]
    assert names == ["performance", "kernels"]  # in the order named


@pytest.mark.parametrize("args", [
    (), ("frobnicate",), ("list", "--assignment", "nope"), ("starter",), ("starter", "--out"),
    ("grade", "--assignment", "nope"),
    ("starter", "--out", "{tmp}/x", "--assignment", "nope"), ("grade", "--path", "{tmp}"),
    ("grade", "--json", "{tmp}/no/such/folder/g.json"), ("list", "--bogus"),
])
def test_usage_errors_exit_2(args, tmp_path):
    job = cli(*(a.replace("{tmp}", str(tmp_path)) for a in args), timeout=120)
    assert job.returncode == 2, (args, job.stdout, job.stderr)
    assert job.stderr.strip()


@pytest.mark.mpi
def test_check_passes():
    job = cli("check", timeout=600)
    assert job.returncode == 0, job.stdout + job.stderr
    assert "check: the kit is sound" in job.stdout
