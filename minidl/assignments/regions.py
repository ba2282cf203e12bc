"""Solution regions: the code a student writes, marked in minidl's own source.

A region is a run of whole lines between two comments at the same indentation::

    def ring_allgather(p, rank, n):
        \"\"\"...\"\"\"
        # BEGIN SOLUTION ring-allgather
        # p - 1 rounds: forward one chunk to the right, copy the next from the left
        bounds = chunk_bounds(n, p)
        ...
        # END SOLUTION

The hint is the rest of the ``BEGIN`` line or, when that is empty, the
comment on the line after it. :func:`strip` replaces the region, markers
included, with ``raise NotImplementedError("Task ring-allgather: <hint>")`` at
the region's indentation, so the module still imports and the function fails
loudly when called. Regions are comments: they never change what minidl does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION[ \t]+(?P<task>[A-Za-z0-9_.-]+)"
                    r"(?:[ \t]*:?[ \t]*(?P<hint>.*?))?[ \t]*$")
_END = re.compile(r"^(?P<indent>[ \t]*)# END SOLUTION[ \t]*$")
_COMMENT = re.compile(r"^[ \t]*#[ \t]?(?P<text>.*?)[ \t]*$")
_LINE_LENGTH = 100

SCANNED = "minidl"
"""The package directory whose ``.py`` files may hold regions (relative to the repository)."""
NOT_SCANNED = ("minidl/assignments",)
"""Directories never scanned: the kit itself, whose docstrings show region markers."""


class RegionError(ValueError):
    """A malformed region: unclosed, nested, unmatched, or with no hint."""


@dataclass(frozen=True)
class Region:
    """One solution region.

    Attributes
    ----------
    path : str
        The file, relative to the repository root (``/``-separated).
    task : str
        The task id on the ``BEGIN`` line.
    hint : str
        One line for the student.
    begin, end : int
        0-based line numbers of the ``BEGIN`` and ``END`` lines.
    indent : str
        The markers' indentation, which the starter's ``raise`` keeps.
    """

    path: str
    task: str
    hint: str
    begin: int
    end: int
    indent: str


def find_regions(text: str, path: str = "<string>") -> list[Region]:
    """Every region of one file's ``text``, in order.

    Raises
    ------
    RegionError
        Naming the file and line of a ``BEGIN`` without ``END`` (or the
        reverse), a region inside another, markers at different indentation,
        or a region with no hint.
    """
    lines = text.splitlines()
    regions: list[Region] = []
    open_at: int | None = None
    for i, line in enumerate(lines):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if open_at is not None:
                raise RegionError(f"{path}:{i + 1}: BEGIN SOLUTION inside the region opened at "
                                  f"line {open_at + 1}; regions do not nest")
            open_at = i
        elif end:
            if open_at is None:
                raise RegionError(f"{path}:{i + 1}: END SOLUTION with no BEGIN SOLUTION before it")
            start = _BEGIN.match(lines[open_at])
            if end["indent"] != start["indent"]:
                raise RegionError(f"{path}:{i + 1}: END SOLUTION is indented differently from "
                                  f"its BEGIN SOLUTION at line {open_at + 1}")
            hint = start["hint"] or ""
            if not hint:
                after = _COMMENT.match(lines[open_at + 1]) if open_at + 1 < i else None
                hint = after["text"] if after else ""
            if not hint:
                raise RegionError(f"{path}:{open_at + 1}: region {start['task']!r} has no hint: "
                                  "write it after the task id, or as a comment on the next line")
            regions.append(Region(path, start["task"], hint, open_at, i, start["indent"]))
            open_at = None
    if open_at is not None:
        raise RegionError(f"{path}:{open_at + 1}: BEGIN SOLUTION is never closed by END SOLUTION")
    return regions


def stub(region: Region) -> list[str]:
    """The lines that replace ``region`` in a starter: one ``raise NotImplementedError``."""
    text = f"Task {region.task}: {region.hint}".replace("\\", "\\\\").replace('"', '\\"')
    message = f'"{text}"'
    one_line = f"{region.indent}raise NotImplementedError({message})"
    if len(one_line) <= _LINE_LENGTH:
        return [one_line]
    return [f"{region.indent}raise NotImplementedError(",
            f"{region.indent}    {message}",
            f"{region.indent})"]


def strip(text: str, tasks: set[str] | frozenset[str], path: str = "<string>") -> str:
    """``text`` with every region of a task in ``tasks`` replaced by its stub.

    Other regions are kept, markers and all. Line endings become ``\\n``.
    """
    regions = [r for r in find_regions(text, path) if r.task in tasks]
    if not regions:
        return text
    lines = text.splitlines()
    out: list[str] = []
    previous = 0
    for r in regions:
        out.extend(lines[previous : r.begin])
        out.extend(stub(r))
        previous = r.end + 1
    out.extend(lines[previous:])
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def source_files(root: Path) -> list[Path]:
    """The ``.py`` files under ``root/minidl`` that may hold regions, sorted."""
    skip = [root / d for d in NOT_SCANNED]
    return sorted(p for p in (root / SCANNED).rglob("*.py")
                  if not any(s in p.parents for s in skip) and "__pycache__" not in p.parts)


def scan(root: Path) -> list[Region]:
    """Every region in the package at ``root`` (a repository root)."""
    regions: list[Region] = []
    for path in source_files(root):
        text = path.read_text(encoding="utf-8")
        if "SOLUTION" in text:
            regions.extend(find_regions(text, path.relative_to(root).as_posix()))
    return regions


def strip_tree(root: Path, tasks: set[str] | frozenset[str]) -> dict[str, str]:
    """Strip the regions of ``tasks`` from the package at ``root``, in place.

    Returns
    -------
    dict
        The original text of every file changed, by path relative to ``root``,
        so that a caller can put it back.
    """
    changed: dict[str, str] = {}
    for path in source_files(root):
        text = path.read_text(encoding="utf-8")
        if "SOLUTION" not in text:
            continue
        rel = path.relative_to(root).as_posix()
        new = strip(text, tasks, rel)
        if new != text:
            changed[rel] = text
            path.write_text(new, encoding="utf-8")
    return changed
