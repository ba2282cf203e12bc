"""minidl.allocator: freed memory stays in the process, so a training step does not fault it
in again."""

import subprocess
import sys

import pytest

from minidl import allocator

# Twenty "steps", each allocating five 4 MiB temporaries and freeing them, as
# a training step does; print the page faults of the last nineteen.
FAULTS = """
import numpy as np
import minidl
from minidl.allocator import page_faults
def step():
    temporaries = [np.ones(1 << 20, np.float32) for _ in range(5)]
    del temporaries
step()  # the first step must fault its memory in either way
before = page_faults()
for _ in range(19):
    step()
print(page_faults() - before)
"""


def faults(keep: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS],
        env={"MINIDL_KEEP_FREED_MEMORY": keep, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout)


@pytest.mark.skipif(allocator._mallopt() is None, reason="not glibc: the allocator is left alone")
def test_import_minidl_keeps_freed_memory_so_reuse_costs_no_page_faults():
    pages = 5 * (4 << 20) // 4096  # of one step
    assert faults("0") >= 5 * pages  # glibc's default: each step's memory is faulted in afresh
    assert faults("1") < pages  # kept: the same memory, reused


@pytest.mark.skipif(allocator._mallopt() is None, reason="not glibc")
def test_keep_freed_memory_reports_that_glibc_took_the_settings():
    assert allocator.keep_freed_memory() is True


@pytest.mark.parametrize("bad", [0, -1, 2**31, 1.5, "1"])
def test_bad_thresholds_are_named(bad):
    with pytest.raises(ValueError, match="mmap_threshold must be a positive int"):
        allocator.keep_freed_memory(mmap_threshold=bad)
    with pytest.raises(ValueError, match="trim_threshold"):
        allocator.keep_freed_memory(trim_threshold=bad)


def test_page_faults_counts_up():
    before = allocator.page_faults()
    assert allocator.page_faults() >= before >= 0
