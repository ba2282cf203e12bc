"""Whether operations record a graph: the one switch behind :class:`no_grad`.

Like DeZero's ``Config.enable_backprop``, the state is a single module-level
flag, visible and small. Every op reads it through :func:`is_grad_enabled`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

_enabled = True


def is_grad_enabled() -> bool:
    """Return True when new operations record the graph for backward."""
    return _enabled


class _GradMode:
    """Set the flag on entry and restore the previous value on exit."""

    mode: bool

    def __enter__(self) -> None:
        global _enabled
        self._previous = _enabled
        _enabled = self.mode

    def __exit__(self, *exc_info: object) -> None:
        global _enabled
        _enabled = self._previous

    def __call__(self, fn: Callable) -> Callable:
        """Use as a decorator: run every call of ``fn`` in this mode."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager under which operations build no graph.

    Results computed inside have ``requires_grad=False`` and remember no
    parents, so they cost no memory for backward. Use it for evaluation and
    for in-place parameter updates in optimizers.

    Examples
    --------
    >>> import minidl
    >>> w = minidl.ones(3, requires_grad=True)
    >>> with minidl.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False

    It also decorates a function: ``@minidl.no_grad()``.
    """

    mode = False


class enable_grad(_GradMode):
    """Context manager that turns graph recording back on inside :class:`no_grad`."""

    mode = True
