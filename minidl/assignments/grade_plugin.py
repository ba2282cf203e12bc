"""The pytest plugin through which the grader hears each test's task and outcome.

It stands alone (no minidl import), because the grader runs pytest on a
student's tree, whose ``minidl`` is the one under test: the grader copies this
file into a folder of its own and loads it with ``-p``. It appends one JSON
line per event to the file named by ``MINIDL_GRADE_EVENTS``:

- ``{"event": "collected", "tests": {nodeid: task marker or null}}``;
- ``{"event": "start", "test": nodeid}`` as a test begins;
- ``{"event": "done", "test": nodeid, "outcome": "passed" | "failed" | "skipped" |
  "mpi-timeout"}``, the last for a test that failed because an MPI job it
  launched ran past its own timeout and was killed (``MPITimeoutError``);
- ``{"event": "collect_error", "where": nodeid, "message": text}``.

The task markers it looks for are the comma-separated ``MINIDL_GRADE_MARKERS``.
"""

from __future__ import annotations

import json
import os

_FAILED = {}


def _write(record):
    path = os.environ.get("MINIDL_GRADE_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def _task(item):
    markers = set(filter(None, os.environ.get("MINIDL_GRADE_MARKERS", "").split(",")))
    for mark in item.iter_markers():
        if mark.name in markers:
            return mark.name
    return None


def pytest_collectreport(report):
    """Note a file that failed to import or collect."""
    if report.failed:
        _write({"event": "collect_error", "where": report.nodeid,
                "message": str(report.longrepr)[-2000:]})


def pytest_collection_finish(session):
    """Note every test collected, with its task marker."""
    _write({"event": "collected", "tests": {item.nodeid: _task(item) for item in session.items}})


def pytest_runtest_logstart(nodeid, location):
    """Note that a test starts: the grader's clock for its task runs."""
    _FAILED[nodeid] = None
    _write({"event": "start", "test": nodeid})


def pytest_runtest_logreport(report):
    """Remember a failure (or a skip) in any phase of a test."""
    if report.failed:
        hung = "MPITimeoutError" in str(report.longrepr)  # minidl.testing's, by name: no import
        if _FAILED.get(report.nodeid) != "mpi-timeout":
            _FAILED[report.nodeid] = "mpi-timeout" if hung else "failed"
    elif report.skipped and _FAILED.get(report.nodeid) is None:
        _FAILED[report.nodeid] = "skipped"


def pytest_runtest_logfinish(nodeid, location):
    """Note the test's outcome: failed if any phase failed, else skipped or passed."""
    _write({"event": "done", "test": nodeid, "outcome": _FAILED.pop(nodeid, None) or "passed"})
