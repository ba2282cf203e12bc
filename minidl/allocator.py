"""Keep freed memory in the process, so that each training step does not fault it in again.

A training step allocates the same large temporaries every time: im2col
matrices, activations, gradients (megabytes each). glibc's ``malloc`` serves
blocks longer than 128 KiB with a fresh ``mmap`` and gives them back to the
kernel with ``munmap`` when they are freed, and it trims the top of its heap
once more than 128 KiB lies free there. The next step then touches pages the
kernel must find and zero again: one minor page fault per 4 KiB. On lenet
with a batch of 128 that was about 4,000 faults and a third of the step's
time (34 ms per step, 21 ms with the settings below: measure it with
:func:`page_faults`).

:func:`keep_freed_memory` raises both thresholds, as PyTorch users get from
preloading jemalloc or tcmalloc: freed blocks stay in the heap and the next
step reuses them. The process's peak memory does not grow (the same blocks
are reused); what changes is that the memory is not given back between
steps. ``import minidl`` calls it, unless the environment variable
``MINIDL_KEEP_FREED_MEMORY`` is ``0``. Elsewhere than glibc (macOS, musl) it
does nothing.
"""

from __future__ import annotations

import ctypes
import os
import resource

M_TRIM_THRESHOLD = -1
"""``mallopt`` parameter: free memory at the top of the heap kept before trimming (glibc)."""

M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter: the size from which a block gets its own ``mmap`` (glibc)."""

MMAP_THRESHOLD = 256 << 20
"""Blocks up to 256 MiB come from the heap, so that freeing them keeps them for reuse."""

TRIM_THRESHOLD = 1 << 30
"""Up to 1 GiB of free memory at the top of the heap stays in the process."""


def keep_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Ask glibc's ``malloc`` to keep freed blocks for reuse instead of returning them.

    Parameters
    ----------
    mmap_threshold : int, optional
        Blocks shorter than this many bytes come from the heap (glibc's
        default is 128 KiB, adjusted upwards as blocks are freed).
    trim_threshold : int, optional
        The free bytes at the top of the heap that ``free`` keeps (default 128 KiB).

    Returns
    -------
    bool
        True if glibc accepted both settings (the mmap threshold, if refused,
        capped at 32 MiB); False elsewhere (not glibc), where nothing changed.

    Raises
    ------
    ValueError
        If a threshold is not a positive int that fits a C ``int``.
    """
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not isinstance(value, int) or not 0 < value < 2**31:
            raise ValueError(f"{name} must be a positive int below 2**31 bytes, got {value!r}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # Each on its own: older glibc refuses an mmap threshold above 32 MiB
    # (half its largest heap); then 32 MiB, which covers a step's temporaries.
    mmap_set = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) or bool(
        mallopt(M_MMAP_THRESHOLD, min(mmap_threshold, 32 << 20))
    )
    trim_set = bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
    return mmap_set and trim_set


def page_faults() -> int:
    """The minor page faults of this process so far: pages the kernel had to map and zero.

    Take the difference around a training step to see what :func:`keep_freed_memory` saves.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _mallopt():  # -> ctypes function or None
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        gnu_get_libc_version = libc.gnu_get_libc_version  # only glibc has it
    except (OSError, AttributeError):
        return None
    del gnu_get_libc_version
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def _configure_from_environment() -> None:
    """What ``import minidl`` does: keep freed memory unless MINIDL_KEEP_FREED_MEMORY=0."""
    if os.environ.get("MINIDL_KEEP_FREED_MEMORY", "1").strip() != "0":
        keep_freed_memory()
