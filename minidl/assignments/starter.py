"""Starter copies: the repository as a student gets it, the chosen assignments' regions stripped.

The copy holds the repository's tracked files (``git ls-files``; without git,
the fixed list :data:`TOP_LEVEL` minus build outputs): the package, its
tests, tutorials, docs, README and setup files, so it installs with the
README's ``pip install -e .`` and imports. Each stripped region becomes
``raise NotImplementedError("Task <id>: <hint>")`` (:mod:`~minidl.assignments.regions`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from minidl.assignments.regions import strip_tree
from minidl.assignments.registry import ASSIGNMENTS, Assignment

TOP_LEVEL = ("minidl", "csrc", "tests", "tutorials", "docs", "examples", "benchmarks",
             "README.md", "LICENSE", "pyproject.toml", "setup.py", ".gitignore")
"""What a copy holds when git cannot list the tracked files."""
_BUILD_DIRS = {"__pycache__", ".pytest_cache", "_build", "build", "dist", ".venv", ".git"}
_BUILD_SUFFIXES = (".so", ".pyd", ".pyc", ".egg-info")
_GENERATED = ("docs/tutorials", "docs/api/generated", "docs/sg_execution_times.rst")


class StarterError(ValueError):
    """The starter cannot be written where asked (a non-empty folder, a file)."""


def repository_root() -> Path:
    """The checkout this ``minidl`` was imported from (the folder holding ``minidl/``)."""
    return Path(__file__).resolve().parents[2]


def _is_build_output(rel: str) -> bool:
    parts = rel.split("/")
    if any(p in _BUILD_DIRS or p.endswith(_BUILD_SUFFIXES) for p in parts):
        return True
    if rel.startswith("csrc/") and rel.endswith((".c", ".cpp", ".html")):
        return True  # Cython writes them next to each .pyx
    return any(rel == g or rel.startswith(g + "/") for g in _GENERATED)


def tracked_files(root: Path) -> list[str]:
    """The repository's files to copy, relative to ``root``, ``/``-separated and sorted.

    ``git ls-files`` where ``root`` is a git checkout (files deleted from the
    working tree are left out); else every file under :data:`TOP_LEVEL` that
    is not a build output.
    """
    root = Path(root)
    if (root / ".git").exists() and shutil.which("git"):
        try:
            listing = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                                     check=True, timeout=60).stdout.decode()
        except (subprocess.SubprocessError, OSError):
            listing = None
        if listing is not None:
            return sorted(f for f in listing.split("\0") if f and (root / f).is_file())
    files = []
    for item in TOP_LEVEL:
        path = root / item
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for f in candidates:
            rel = f.relative_to(root).as_posix()
            if f.is_file() and not _is_build_output(rel):
                files.append(rel)
    return sorted(files)


def copy_tree(out: Path, root: Path | None = None) -> list[str]:
    """Copy the repository at ``root`` (default: :func:`repository_root`) into ``out``.

    Returns
    -------
    list of str
        The files copied, relative to ``out``.

    Raises
    ------
    StarterError
        If ``out`` is a file, or a folder that is not empty.
    """
    root = Path(root) if root is not None else repository_root()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StarterError(f"starter --out {out}: this is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise StarterError(f"starter --out {out}: the folder is not empty; give a new or empty "
                           "folder (the starter never overwrites anything)")
    files = tracked_files(root)
    for rel in files:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return files


def write_starter(out: Path, assignments: Iterable[Assignment] = ASSIGNMENTS,
                  root: Path | None = None) -> list[str]:
    """Write a student copy of the repository into ``out``, stripping ``assignments``' regions.

    Parameters
    ----------
    out : pathlib.Path
        A new or empty folder.
    assignments : iterable of Assignment, default every assignment
        Whose tasks to strip; the other regions stay, solved.
    root : pathlib.Path, optional
        The repository to copy; default :func:`repository_root`.

    Returns
    -------
    list of str
        The files whose regions were stripped, relative to ``out``.

    Raises
    ------
    StarterError
        If ``out`` is a file or a non-empty folder.
    """
    copy_tree(out, root)
    tasks = {t.id for a in assignments for t in a.tasks}
    return sorted(strip_tree(Path(out), tasks))
