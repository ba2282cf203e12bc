"""The one random generator that minidl draws from.

Initialisation, dropout, shuffling and :func:`minidl.randn` all use the
generator returned by :func:`generator`, so one call to :func:`manual_seed`
makes a whole run repeatable.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed minidl's generator and return it.

    Parameters
    ----------
    seed : int
        Any non-negative integer.

    Examples
    --------
    >>> import minidl
    >>> _ = minidl.manual_seed(0)
    >>> a = minidl.randn(2)
    >>> _ = minidl.manual_seed(0)
    >>> bool((minidl.randn(2).data == a.data).all())
    True
    """
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """Return the generator that minidl draws from (see :func:`manual_seed`)."""
    return _generator
