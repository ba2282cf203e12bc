"""The documentation builds with warnings as errors, and every tutorial runs.

The build runs on a copy of ``docs/`` and ``tutorials/`` in a temporary
directory: sphinx-gallery writes its generated pages next to ``conf.py``, and
the copy keeps the checkout clean and safe from a build running beside it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 600
# What a build of docs/ in place leaves there (all gitignored); not copied.
GENERATED = ("_build", "tutorials", "api/generated", "sg_execution_times.rst")


@pytest.mark.docs
@pytest.mark.timeout(BUILD_TIMEOUT_S + 60)
def test_docs_build_without_warnings(tmp_path):
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs", ignore=_generated_in_docs)
    shutil.copytree(REPO_ROOT / "tutorials", tmp_path / "tutorials")
    html = tmp_path / "html"
    # The copy has no minidl beside it: import the one in this checkout.
    pythonpath = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p)}

    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    command += ["-d", str(tmp_path / "doctrees"), "docs", str(html)]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )

    assert done.returncode == 0, (
        f"sphinx-build exited with {done.returncode}\n"
        f"--- stdout ---\n{done.stdout[-20000:]}\n--- stderr ---\n{done.stderr[-20000:]}"
    )
    assert "API reference" in (html / "api.html").read_text()
    tutorials_index = (html / "tutorials" / "index.html").read_text()
    assert "Tutorials" in tutorials_index
    for tutorial in sorted((REPO_ROOT / "tutorials").glob("*.py")):
        page = f"{tutorial.stem}.html"
        assert (html / "tutorials" / page).is_file(), f"no page built for tutorials/{tutorial.name}"
        assert page in tutorials_index, f"tutorials/{tutorial.name} is not in the tutorials index"


def _generated_in_docs(directory: str, names: list[str]) -> list[str]:
    """``copytree`` filter: skip what an earlier in-place build generated under docs/."""
    here = Path(directory).relative_to(REPO_ROOT / "docs")
    return [name for name in names if (here / name).as_posix() in GENERATED]


def test_tutorials_keep_no_mpi_program_in_a_string():
    # A program in a string cannot be run the way the tutorials tell a student
    # to run it (issue 14): multi-rank programs are files, in examples/ or in
    # tutorials/programs/, that the tutorials print and run.
    for tutorial in sorted((REPO_ROOT / "tutorials").glob("*.py")):
        for string in _string_constants(tutorial):
            assert "from mpi4py import MPI" not in string, (
                f"tutorials/{tutorial.name} holds an MPI program in a string; "
                "make it a file in tutorials/programs/ or examples/"
            )


def test_tutorial_programs_start_with_the_command_that_runs_them():
    programs = sorted((REPO_ROOT / "tutorials" / "programs").glob("*.py"))
    assert programs, "tutorials/programs/ holds no program"
    for program in programs:
        first = program.read_text().splitlines()[0]
        command = f"python -m mpi4py tutorials/programs/{program.name}"
        assert first.startswith("# Run: mpiexec -n ") and command in first, (
            f"tutorials/programs/{program.name} starts with {first!r}, "
            f"not '# Run: mpiexec -n P {command}'"
        )


def _string_constants(path: Path) -> list[str]:
    """Every string literal in the Python file at ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
