"""``Function``: one differentiable operation, forward and backward side by side.

A subclass implements two methods on NumPy arrays:

- ``forward(self, *arrays) -> array`` computes the result and keeps on ``self``
  whatever ``backward`` will need;
- ``backward(self, grad) -> array or tuple of arrays`` returns the gradient of
  the loss with respect to each input, given ``grad``, the gradient with respect
  to the output. An entry may be ``None`` where ``self.needs_grad[i]`` is False.

``Function.apply(*inputs, **options)`` runs ``forward`` and, when gradients are
needed, links the result to this Function and the Function to its inputs. That
link is the graph that :func:`minidl.autograd.engine.backward` walks. Once
backward has passed through an op it calls :meth:`Function.release`, which
drops what ``forward`` kept and the links (unless ``retain_graph=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd import grad_mode
from minidl.autograd.tensor import Tensor, as_tensor


class Function:
    """Base class of every differentiable op (see the module docstring).

    Attributes
    ----------
    parents : tuple of Tensor
        The inputs, in the order ``forward`` received them (set by ``apply``
        only when the graph is recorded).
    needs_grad : tuple of bool
        For each input, whether ``backward`` must return its gradient.
    released : bool
        True once :meth:`release` has run: this op cannot run backward again.
    """

    parents: tuple[Tensor, ...] = ()
    needs_grad: tuple[bool, ...] = ()
    released = False

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        """Run the op on ``inputs`` (Tensors, arrays or scalars) and record it.

        ``options`` (an axis, a shape, an index) go to the constructor; they
        are not differentiated.
        """
        fn = cls(**options)
        tensors = [as_tensor(x) for x in inputs]
        try:
            out = fn.forward(*[t.data for t in tensors])
        except ValueError as exc:
            shapes = " and ".join(str(t.shape) for t in tensors)
            raise ValueError(f"{cls.__name__}: cannot combine shapes {shapes}: {exc}") from None
        needs = tuple(t.requires_grad for t in tensors)
        requires_grad = grad_mode.is_grad_enabled() and any(needs)
        result = Tensor._make(out, requires_grad)
        if requires_grad:
            fn.parents = tuple(tensors)
            fn.needs_grad = needs
            result._ctx = fn
        return result

    def release(self) -> None:
        """Drop everything this op holds: what ``forward`` saved, and its inputs.

        The backward pass calls it on each op it has passed through (unless
        ``retain_graph=True``), as PyTorch frees saved tensors: the arrays a
        graph keeps alive (activations, masks) are most of a training step's
        memory, and they are freed as soon as backward no longer needs them.
        Every attribute lives in the instance's ``__dict__``, so clearing it
        frees them all, whatever a subclass saved; ``parents`` falls back to
        the class's empty tuple.
        """
        self.__dict__.clear()
        self.released = True

    @property
    def name(self) -> str:
        """The op's name as graphs print it, e.g. ``"MatMul"``."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}>"


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of
    length 1, so its gradient is the sum over exactly those axes.

    Examples
    --------
    >>> unbroadcast(np.ones((4, 2, 3)), (2, 1)).tolist()
    [[12.0], [12.0]]
    """
    if grad.shape == shape:
        return grad
    # BEGIN SOLUTION broadcast-backward
    # sum grad over the leading axes broadcasting added and the axes it stretched from 1
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
    # END SOLUTION
