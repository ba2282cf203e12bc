"""Fixtures shared by minidl's tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest


def _processes_with(marker: str) -> list[str]:
    """Live processes whose command line or environment contains ``marker``, as "PID: COMMAND".

    Zombies have an empty command line and environment, so finished processes
    that are only waiting to be reaped are not counted.
    """
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone since listdir, or not ours to read
            continue
        if needle in cmdline or needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry}: {command}")
    return found


@pytest.fixture
def job_marker() -> str:
    """A string unique to this test, to tag the processes it starts."""
    return f"minidl-test-{uuid.uuid4().hex}"


@pytest.fixture
def processes_with() -> Callable[[str], list[str]]:
    """Find live processes tagged with a marker (Linux only: reads /proc).

    Pass the marker to a job in its arguments or environment; every process
    the job starts inherits the environment, so after the job this returns
    ``[]`` exactly when nothing of it is left running.
    """
    if not os.path.isdir("/proc"):
        pytest.skip("finding leftover processes needs /proc (Linux)")
    return _processes_with
