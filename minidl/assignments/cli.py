"""``python -m minidl.assignments``: list, starter, grade, check.

Exit codes: ``list``, ``starter`` and ``grade`` exit 0 when they did their
job (``grade`` whatever the score); ``check`` exits 0 only when the kit is
sound, else 1; a usage error (unknown command, option or assignment, a
``--path`` that is not a minidl tree, a non-empty ``--out``) exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from minidl.assignments.registry import ASSIGNMENTS, Assignment, get_assignment

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minidl.assignments",
        description="Course assignments: starter copies, grading, and a check of the kit.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every assignment and its tasks with points")
    listing.add_argument("--assignment", action="extend", nargs="+", metavar="NAME",
                         help="only these assignments (default: all)")
    starter = commands.add_parser(
        "starter", help="write a student copy of the repository with solutions stripped")
    starter.add_argument("--out", required=True, type=Path, metavar="DIR",
                         help="a new or empty folder")
    starter.add_argument("--assignment", action="extend", nargs="+", metavar="NAME",
                         help="strip only these assignments (default: all)")
    grade = commands.add_parser("grade", help="run each task's tests and print the points")
    grade.add_argument("--path", type=Path, metavar="DIR",
                       help="the tree to grade (default: the working directory if it is a "
                       "minidl tree, else the checkout minidl was imported from)")
    grade.add_argument("--assignment", action="extend", nargs="+", metavar="NAME",
                       help="grade only these assignments (default: all)")
    grade.add_argument("--json", type=Path, metavar="FILE",
                       help="also write the results as a JSON list for a gradebook")
    commands.add_parser("check", help="prove the kit sound: stripped tasks fail, solutions pass")
    return parser


def _chosen(parser: argparse.ArgumentParser, names: list[str] | None) -> tuple[Assignment, ...]:
    if not names:
        return ASSIGNMENTS
    chosen = []
    for name in names:
        try:
            assignment = get_assignment(name)
        except KeyError as exc:  # one line, like the other usage errors (no usage block)
            print(f"error: {exc.args[0]}", file=sys.stderr)
            raise SystemExit(USAGE_ERROR) from None
        if assignment not in chosen:
            chosen.append(assignment)
    return tuple(chosen)


def _current_checkout() -> Path:
    """The working directory when it is a minidl tree (a student's copy), else this checkout."""
    from minidl.assignments.starter import repository_root

    here = Path.cwd()
    if (here / "minidl").is_dir() and (here / "tests" / "assignments").is_dir():
        return here
    return repository_root()


def _list(assignments: tuple[Assignment, ...]) -> int:
    for a in assignments:
        extra = f"  (builds on {', '.join(a.builds_on)})" if a.builds_on else ""
        print(f"{a.name}: {a.title} [{a.max_points:g} points]{extra}")
        print(f"    handout docs/{a.handout}.rst, tests {a.tests}")
        for t in a.tasks:
            flags = ", multi-rank" if t.multi_rank else ""
            print(f"    {t.id:<22} {t.points:>5g} points  (pytest -m {t.marker}{flags})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list(_chosen(parser, args.assignment))
    if args.command == "starter":
        from minidl.assignments.starter import StarterError, write_starter

        chosen = _chosen(parser, args.assignment)
        try:
            stripped = write_starter(args.out, chosen)
        except StarterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return USAGE_ERROR
        names = ", ".join(a.name for a in chosen)
        print(f"wrote a starter copy to {args.out} (assignments stripped: {names}). "
              f"Stubs to fill in, in: {', '.join(str(path) for path in stripped)}. "
              f"Install it with: cd {args.out} && pip install -e .")
        return 0
    if args.command == "grade":
        from minidl.assignments.grader import format_table, grade, write_json

        chosen = _chosen(parser, args.assignment)
        tree = args.path if args.path is not None else _current_checkout()
        if not (tree / "minidl").is_dir():
            print(f"error: grade --path {tree}: no minidl/ package there; give the root of "
                  "a minidl checkout or starter copy", file=sys.stderr)
            return USAGE_ERROR
        missing = [a.tests for a in chosen if not (tree / a.tests).is_file()]
        if missing:
            print(f"error: grade --path {tree}: missing test files {', '.join(missing)}",
                  file=sys.stderr)
            return USAGE_ERROR
        if args.json is not None and not args.json.parent.resolve().is_dir():
            print(f"error: grade --json {args.json}: the folder does not exist", file=sys.stderr)
            return USAGE_ERROR
        results = grade(tree, chosen, quiet=False)
        print(format_table(results))
        if args.json is not None:
            write_json(results, args.json)
        return 0
    from minidl.assignments.check import check

    ok = check()
    print("check: the kit is sound" if ok else "check: FAILED (see the lines above)")
    return 0 if ok else 1
