"""``Parameter``: a tensor that a Module learns."""

from __future__ import annotations

from typing import Any

from minidl.autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad and that a :class:`Module` registers.

    Assigning a Parameter to a module attribute (``self.weight = Parameter(...)``)
    adds it to ``module.parameters()``, which is what optimizers update.

    Parameters
    ----------
    data : array_like
        Initial values (NumPy arrays keep their dtype).
    requires_grad : bool, default True
        Set False to freeze it.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
