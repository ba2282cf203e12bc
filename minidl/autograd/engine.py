"""Reverse-mode automatic differentiation: the backward pass.

:func:`backward` works in two sweeps over the graph, both with an explicit
stack (never recursion, so a chain of 10,000 ops is fine):

1. From the output, visit every tensor that requires grad and count its
   *consumers*: how many recorded ops used it as an input.
2. Starting with the output, pop a tensor whose gradient is complete, run its
   hooks, and either add the gradient into ``.grad`` (a leaf) or call its op's
   ``backward`` and pass one gradient to each input. An input becomes ready
   when its last consumer has passed its gradient (Kahn's algorithm, run in
   reverse). A leaf is processed the moment it is ready, so its hooks fire
   while backward continues through earlier layers.

Gradients of intermediate tensors live only in a dictionary local to one call,
so nothing from one backward pass leaks into the next; leaves *accumulate*
into ``.grad`` across calls, as in PyTorch (``zero_grad`` resets them).

As in PyTorch, each op frees what it saved once its backward has run
(:meth:`~minidl.autograd.function.Function.release`), so memory goes back
while backward is still working on earlier layers. A second backward through
those ops raises, before any gradient moves, unless the first one was called
with ``retain_graph=True``.

A hook may :func:`queue_callback` a function to run once the whole pass is
done: data parallelism uses it to wait for the last gradient all-reduce before
``backward()`` returns.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from minidl.autograd.tensor import Tensor

# Callbacks queued during the backward pass now running (None outside backward).
_callbacks: list[Callable[[], None]] | None = None


def queue_callback(fn: Callable[[], None]) -> None:
    """Run ``fn()`` when the backward pass now running has finished.

    Only hooks call this, from inside ``backward()``; callbacks run in the
    order they were queued, after every gradient is in place.
    """
    if _callbacks is None:
        raise RuntimeError(
            "queue_callback() can only be called during backward(), e.g. from a hook"
        )
    _callbacks.append(fn)


SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed): the {op} op on the way already ran its backward, "
    "and backward frees what each op saved. Specify retain_graph=True in the first "
    "backward() if you need to backward through the graph a second time."
)


def _count_consumers(root: Tensor) -> dict[int, int]:
    """Map ``id(tensor)`` to how many recorded ops consume it, over the graph of ``root``.

    Raises the RuntimeError of :data:`SECOND_BACKWARD` on reaching an op whose
    graph an earlier backward released.
    """
    # BEGIN SOLUTION topological-order
    # walk the graph from root with an explicit stack and count each tensor's consumers
    consumers: dict[int, int] = {}
    stack = [root]
    while stack:
        t = stack.pop()
        if t._ctx is None:
            continue
        if t._ctx.released:
            raise RuntimeError(SECOND_BACKWARD.format(op=t._ctx.name))
        for parent in t._ctx.parents:
            if not parent._requires_grad:
                continue
            key = id(parent)
            if key not in consumers:
                consumers[key] = 0
                stack.append(parent)
            consumers[key] += 1
    return consumers
    # END SOLUTION


def _initial_grad(root: Tensor, grad: Any) -> np.ndarray:
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a tensor with one element (a loss); "
                f"this one has shape {root.shape}. Pass gradient=... of that shape, "
                "or reduce it first (e.g. .sum())."
            )
        return np.ones_like(root.data)
    grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=root.dtype)
    if grad.shape != root.shape:
        raise ValueError(
            f"backward(gradient): the gradient has shape {grad.shape} but the tensor has shape "
            f"{root.shape}"
        )
    return grad


def _accumulate_leaf(leaf: Tensor, g: np.ndarray) -> None:
    """Add ``g`` into ``leaf.grad``, in place when it already exists.

    In place matters: data parallelism makes ``.grad`` a view into a flat
    communication buffer, and the view must survive every backward pass.
    """
    if leaf.grad is None:
        leaf.grad = np.array(g, dtype=leaf.data.dtype, copy=True).reshape(leaf.shape)
    else:
        leaf.grad += g


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate ``d root / d leaf`` into ``leaf.grad`` for every leaf of the graph.

    Parameters
    ----------
    root : Tensor
        The tensor to differentiate, usually a scalar loss.
    grad : array_like, optional
        ``d loss / d root`` when ``root`` is not a scalar; defaults to 1.
    retain_graph : bool, default False
        Keep what each op saved, for another backward through the same graph.
        By default each op releases it once its backward has run.

    Raises
    ------
    RuntimeError
        If ``root`` does not require grad, is not a scalar and no ``grad``
        is given, or its graph was released by an earlier backward.
    ValueError
        If ``grad`` does not have the shape of ``root``.
    """
    if not root._requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "had requires_grad=True (or it ran under no_grad())"
        )
    global _callbacks
    outer, _callbacks = _callbacks, []
    try:
        _run(root, grad, retain_graph)
        for fn in _callbacks:
            fn()
    finally:
        _callbacks = outer


def _run(root: Tensor, grad: Any, retain_graph: bool) -> None:
    """The two sweeps described in the module docstring."""
    first = _initial_grad(root, grad)  # the caller's mistake first, then the graph's
    consumers = _count_consumers(root)
    grads: dict[int, np.ndarray] = {id(root): first}
    ready = [root]
    while ready:
        t = ready.pop()
        # None when no path carried a gradient here (every consumer returned None).
        g = grads.pop(id(t), None)
        fn = t._ctx
        parent_grads: tuple = ()
        if g is not None:
            for hook in t._hooks:
                replaced = hook(g)
                if replaced is not None:
                    g = replaced
            if fn is None:
                _accumulate_leaf(t, g)
                for hook in t._post_hooks:
                    hook(t)
                continue
            if t._retains_grad:
                _accumulate_leaf(t, g)
            parent_grads = fn.backward(g)
            if not isinstance(parent_grads, tuple):
                parent_grads = (parent_grads,)
        if fn is None:
            continue
        for i, parent in enumerate(fn.parents):
            if not parent._requires_grad:
                continue
            key = id(parent)
            pg = parent_grads[i] if parent_grads else None
            if pg is not None:
                grads[key] = grads[key] + pg if key in grads else pg
            consumers[key] -= 1
            if consumers[key] == 0:
                ready.append(parent)
        if not retain_graph:
            fn.release()  # its inputs' gradients are out: what it saved can go
