"""``Tensor``: a NumPy array that remembers how it was computed.

``t.data`` is the array, ``t.grad`` the gradient that :meth:`Tensor.backward`
accumulates into it, and ``t._ctx`` the :class:`~minidl.autograd.function.Function`
that produced ``t`` (None for a leaf: data you made, such as a parameter).
Every arithmetic method is one line that hands the work to an op in
:mod:`minidl.autograd.ops`, where forward and backward sit side by side.

Methods take NumPy's argument names and PyTorch's alike: ``axis=`` or
``dim=``, ``keepdims=`` or ``keepdim=``. Both spellings mean the same
argument; :func:`axis_or_dim` and :func:`keepdims_or_keepdim` pick the one
given.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable

import numpy as np

#: Device names ``Tensor.to`` recognises as devices rather than dtypes; only "cpu" is minidl's.
_DEVICES = ("cpu", "cuda", "mps", "xpu", "meta")

#: dtypes a Tensor may hold; gradients need one of the floating ones.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SUPPORTED_DTYPES = FLOAT_DTYPES + tuple(np.dtype(t) for t in (np.int32, np.int64, np.bool_))
_SUPPORTED_NAMES = ", ".join(d.name for d in SUPPORTED_DTYPES)


def _check_dtype(array: np.ndarray) -> None:
    if array.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"unsupported dtype {array.dtype}: minidl tensors hold {_SUPPORTED_NAMES}")


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Convert ``data`` with minidl's dtype rules.

    An explicit ``dtype`` wins. NumPy arrays keep their dtype (so float64 stays
    float64). Python floats and lists of them become float32, the deep-learning
    default; Python ints become int64 and bools stay bool.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        array = np.array(data, dtype=dtype)
    elif isinstance(data, (np.ndarray, np.generic)):
        array = np.array(data)
    else:
        array = np.array(data)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        elif array.dtype.kind == "i":
            array = array.astype(np.int64)
    _check_dtype(array)
    return array


def axis_or_dim(owner: str, axis: Any, dim: Any) -> Any:
    """Return the axis given as ``axis=`` (NumPy's name) or ``dim=`` (PyTorch's).

    Raises
    ------
    TypeError
        If both are given, naming ``owner``, the function that received them.
    """
    if dim is None:
        return axis
    if axis is not None:
        raise TypeError(
            f"{owner}() got both axis={axis!r} and dim={dim!r}: they are one argument "
            "(NumPy's and PyTorch's name for it), pass only one"
        )
    return dim


def keepdims_or_keepdim(owner: str, keepdims: bool, keepdim: bool | None) -> bool:
    """Return the flag given as ``keepdims=`` (NumPy's name) or ``keepdim=`` (PyTorch's).

    Raises
    ------
    TypeError
        If both are given (``keepdims=True`` and any ``keepdim``), naming ``owner``.
    """
    if keepdim is None:
        return bool(keepdims)
    if keepdims:
        raise TypeError(
            f"{owner}() got both keepdims={keepdims!r} and keepdim={keepdim!r}: they are one "
            "argument (NumPy's and PyTorch's name for it), pass only one"
        )
    return bool(keepdim)


#: What ``max(dim=...)`` and ``min(dim=...)`` return, as in PyTorch: ``values, indices = ...``.
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


class Size(int):
    """The number of elements, as NumPy's ``a.size``; call it for PyTorch's ``t.size()``.

    ``t.size`` is an int (``t.size == 6``), and ``t.size()`` is the shape,
    ``t.size(d)`` the length of axis ``d``, as in PyTorch.

    Examples
    --------
    >>> import minidl
    >>> t = minidl.zeros(2, 3)
    >>> t.size, t.size(), t.size(-1)
    (6, (2, 3), 3)
    """

    def __new__(cls, shape: tuple[int, ...]) -> "Size":
        size = super().__new__(cls, int(np.prod(shape, dtype=np.int64)))
        size.shape = tuple(shape)
        return size

    def __call__(self, dim: int | None = None) -> tuple[int, ...] | int:
        if dim is None:
            return self.shape
        if not -len(self.shape) <= dim < len(self.shape):
            raise IndexError(f"size({dim}): a tensor of shape {self.shape} has no axis {dim}")
        return self.shape[dim]

    def __reduce__(self) -> tuple:
        return int, (int(self),)  # pickles (and copies) as the plain number


class RemovableHandle:
    """Returned by the ``register_*hook`` methods; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        """Unregister the hook (doing nothing if it is already gone)."""
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    """A multi-dimensional array with reverse-mode automatic differentiation.

    Parameters
    ----------
    data : array_like
        The values. NumPy arrays keep their dtype; Python floats become
        float32 (see :func:`minidl.tensor`).
    requires_grad : bool, default False
        Record operations on this tensor so that :meth:`backward` can compute
        its gradient. Only float32 and float64 tensors may require gradients.
    dtype : dtype, optional
        Convert the data to this dtype.

    Examples
    --------
    >>> import minidl
    >>> x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.], dtype=float32)
    """

    __slots__ = ("data", "grad", "_requires_grad", "_ctx", "_hooks", "_post_hooks",
                 "_retains_grad", "name", "__weakref__")

    # Make NumPy hand mixed expressions (``array * tensor``) to Tensor's
    # reflected methods instead of converting the tensor to an array.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data = _to_array(data, dtype)
        self.grad: np.ndarray | None = None
        self._ctx = None
        self._hooks: list[Callable] = []
        self._post_hooks: list[Callable] = []
        self._retains_grad = False
        self.name: str | None = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool) -> "Tensor":
        """Wrap an op's result without copying or checking it (the fast path)."""
        t = cls.__new__(cls)
        t.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        t.grad = None
        t._requires_grad = requires_grad
        t._ctx = None
        t._hooks = []
        t._post_hooks = []
        t._retains_grad = False
        t.name = None
        return t

    # ----------------------------------------------------------- properties
    @property
    def requires_grad(self) -> bool:
        """Whether operations on this tensor are recorded for backward."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(
                "only float32 and float64 tensors can require gradients, "
                f"this one is {self.data.dtype}"
            )
        if not value and self._ctx is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf; use .detach()")
        self._requires_grad = bool(value)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (their ``.grad`` is kept)."""
        return self._ctx is None

    @property
    def grad_fn(self):
        """The Function that produced this tensor, or None for a leaf."""
        return self._ctx

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data``."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of ``data``."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> Size:
        """The number of elements, an int; ``t.size()`` gives the shape (:class:`Size`)."""
        return Size(self.data.shape)

    @property
    def T(self) -> "Tensor":
        """The tensor with its axes reversed (differentiable)."""
        return _ops.Transpose.apply(self, axes=None)

    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for :attr:`ndim`)."""
        return self.data.ndim

    def numel(self) -> int:
        """The number of elements (PyTorch's name for :attr:`size`)."""
        return self.data.size

    # -------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype != np.float32:
            extras.append(f"dtype={self.data.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    def item(self) -> float | int | bool:
        """Return the single element as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, this one has shape {self.shape}: "
                f"a Tensor with {self.data.size} elements cannot be converted to a Python scalar"
            )
        return self.data.item()

    # int(t), float(t) and `if t:` read the one element, as in PyTorch.
    def __int__(self) -> int:
        return int(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements (shape "
                f"{self.shape}) is ambiguous: reduce it to one element first, or ask the "
                "array, e.g. (a == b).data.all()"
            )
        return bool(self.data.item())

    def numpy(self) -> np.ndarray:
        """Return ``data`` (the same array, not a copy)."""
        return self.data

    def tolist(self) -> Any:
        """Return the data as nested Python lists."""
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor._make(self.data, False)

    # ------------------------------------------------------------ autograd
    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False, *, grad: Any = None) -> None:
        """Accumulate the gradient of this tensor into every leaf's ``.grad``.

        Parameters
        ----------
        gradient : array_like, optional
            The gradient with respect to this tensor. May be omitted only for
            a tensor with one element (a loss), where it is 1.
        retain_graph : bool, optional
            Keep the graph for another backward through it. By default (None
            or False) backward frees what each op saved as it goes, as PyTorch
            does, and a second backward through the same ops raises.
        create_graph : bool, default False
            Only False: minidl's gradients are NumPy arrays, not tensors with
            a graph of their own, so there are no higher-order gradients.
        grad : array_like, optional
            The older name of ``gradient`` (keyword only).

        Raises
        ------
        RuntimeError
            On a second backward through ops whose graph was freed, or when
            this tensor does not require grad.
        TypeError
            If both ``gradient`` and ``grad`` are given.
        NotImplementedError
            For ``create_graph=True``.

        See Also
        --------
        minidl.autograd.engine.backward : the algorithm.
        """
        if grad is not None:
            if gradient is not None:
                raise TypeError("backward() got both gradient= and grad=: pass only one")
            gradient = grad
        if create_graph:
            raise NotImplementedError(
                "backward(create_graph=True): minidl's gradients are NumPy arrays without a "
                "graph of their own, so it cannot differentiate them again"
            )
        _engine.backward(self, gradient, retain_graph=bool(retain_graph))

    def register_hook(self, hook: Callable[[np.ndarray], np.ndarray | None]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is final in a backward pass.

        For a leaf the hook runs before the gradient is added into ``.grad``;
        if it returns an array, that array is used instead. Hooks on a leaf
        fire as soon as every op that used the leaf has run its backward, while
        backward carries on through the rest of the graph: this is the moment
        data parallelism starts a gradient's all-reduce.

        Returns
        -------
        RemovableHandle
            Call ``.remove()`` on it to unregister the hook.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    def register_post_accumulate_grad_hook(
        self, hook: Callable[["Tensor"], None]
    ) -> RemovableHandle:
        """Call ``hook(tensor)`` on a leaf right after its ``.grad`` is updated."""
        if not self.is_leaf or not self._requires_grad:
            raise RuntimeError("post-accumulate hooks are for leaves that require grad")
        self._post_hooks.append(hook)
        return RemovableHandle(self._post_hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor too (leaves always keep it)."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    # --------------------------------------------------------- arithmetic
    def __add__(self, other: Any) -> "Tensor":
        return _ops.Add.apply(self, _lift(other, self))

    def __radd__(self, other: Any) -> "Tensor":
        return _ops.Add.apply(_lift(other, self), self)

    def __sub__(self, other: Any) -> "Tensor":
        return _ops.Sub.apply(self, _lift(other, self))

    def __rsub__(self, other: Any) -> "Tensor":
        return _ops.Sub.apply(_lift(other, self), self)

    def __mul__(self, other: Any) -> "Tensor":
        return _ops.Mul.apply(self, _lift(other, self))

    def __rmul__(self, other: Any) -> "Tensor":
        return _ops.Mul.apply(_lift(other, self), self)

    def __truediv__(self, other: Any) -> "Tensor":
        return _ops.Div.apply(self, _lift(other, self))

    def __rtruediv__(self, other: Any) -> "Tensor":
        return _ops.Div.apply(_lift(other, self), self)

    def __pow__(self, other: Any) -> "Tensor":
        return _ops.Pow.apply(self, _lift(other, self))

    def __rpow__(self, other: Any) -> "Tensor":
        return _ops.Pow.apply(_lift(other, self), self)

    def __matmul__(self, other: Any) -> "Tensor":
        return _ops.MatMul.apply(self, other)

    def __rmatmul__(self, other: Any) -> "Tensor":
        return _ops.MatMul.apply(other, self)

    def __neg__(self) -> "Tensor":
        return _ops.Neg.apply(self)

    def __getitem__(self, index: Any) -> "Tensor":
        return _ops.GetItem.apply(self, index=index)

    # Comparisons are not differentiable: they return boolean tensors.
    def __lt__(self, other: Any) -> "Tensor":
        return Tensor._make(self.data < _raw(other), False)

    def __le__(self, other: Any) -> "Tensor":
        return Tensor._make(self.data <= _raw(other), False)

    def __gt__(self, other: Any) -> "Tensor":
        return Tensor._make(self.data > _raw(other), False)

    def __ge__(self, other: Any) -> "Tensor":
        return Tensor._make(self.data >= _raw(other), False)

    # ``==`` and ``!=`` too, as in PyTorch: so ``t in some_list`` and
    # ``some_list.index(t)`` compare elementwise; find a tensor with ``is``.
    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        if other is None:
            return NotImplemented  # Python then answers by identity: t == None is False
        return Tensor._make(self.data == _raw(other), False)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        if other is None:
            return NotImplemented
        return Tensor._make(self.data != _raw(other), False)

    def eq(self, other: Any) -> "Tensor":
        """Elementwise ``==`` as a boolean tensor (the same as ``self == other``)."""
        return self == other

    # Defining __eq__ would make tensors unhashable; hashing stays by identity,
    # so sets and dicts of tensors (parameters, hooks) still work.
    __hash__ = object.__hash__

    # ---------------------------------------------------------- reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *,
            dim: int | tuple[int, ...] | None = None, keepdim: bool | None = None) -> "Tensor":
        """Sum over ``axis`` (all axes when None); ``dim``/``keepdim`` are PyTorch's names."""
        axis = axis_or_dim("sum", axis, dim)
        keepdims = keepdims_or_keepdim("sum", keepdims, keepdim)
        return _ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *,
             dim: int | tuple[int, ...] | None = None, keepdim: bool | None = None) -> "Tensor":
        """Mean over ``axis`` (all axes when None); ``dim``/``keepdim`` are PyTorch's names."""
        axis = axis_or_dim("mean", axis, dim)
        keepdims = keepdims_or_keepdim("mean", keepdims, keepdim)
        return _ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *,
            dim: int | None = None, keepdim: bool | None = None) -> "Tensor | ValuesIndices":
        """Maximum over ``axis``; tied maxima share the gradient equally.

        With ``axis`` (NumPy's name) it returns the maxima. With ``dim``
        (PyTorch's) it returns PyTorch's pair ``(values, indices)``, so that
        ``values, indices = t.max(dim=1)`` means what it means in PyTorch;
        ``indices`` is :meth:`argmax` (no gradient).
        """
        return self._extreme(_ops.Max, "max", axis, keepdims, dim, keepdim)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *,
            dim: int | None = None, keepdim: bool | None = None) -> "Tensor | ValuesIndices":
        """Minimum over ``axis``; tied minima share the gradient equally.

        Like :meth:`max`: with ``dim`` it returns ``(values, indices)``.
        """
        return self._extreme(_ops.Min, "min", axis, keepdims, dim, keepdim)

    def _extreme(self, op: type, name: str, axis: Any, keepdims: bool, dim: Any,
                 keepdim: bool | None) -> "Tensor | ValuesIndices":
        keepdims = keepdims_or_keepdim(name, keepdims, keepdim)
        values = op.apply(self, axis=axis_or_dim(name, axis, dim), keepdims=keepdims)
        if dim is None:
            return values
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(
                f"{name}(dim={dim!r}): dim= takes one axis, as in PyTorch (the result also "
                f"holds its indices); for the {name} over several axes use axis={dim!r}"
            )
        indices = self.argmax(dim, keepdims) if name == "max" else self.argmin(dim, keepdims)
        return ValuesIndices(values, indices)

    def argmax(self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
               keepdim: bool | None = None) -> "Tensor":
        """The index of the maximum along ``axis`` (of the flattened tensor when None).

        The result is int64 and has no gradient. On ties, the first index wins.
        """
        return self._arg(np.argmax, "argmax", axis, keepdims, dim, keepdim)

    def argmin(self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
               keepdim: bool | None = None) -> "Tensor":
        """The index of the minimum along ``axis`` (of the flattened tensor when None); int64."""
        return self._arg(np.argmin, "argmin", axis, keepdims, dim, keepdim)

    def _arg(self, find: Callable, name: str, axis: Any, keepdims: bool, dim: Any,
             keepdim: bool | None) -> "Tensor":
        axis = axis_or_dim(name, axis, dim)
        keepdims = keepdims_or_keepdim(name, keepdims, keepdim)
        if self.data.size == 0:
            raise ValueError(f"{name}() of an empty tensor of shape {self.shape}")
        index = find(self.data, axis=axis, keepdims=keepdims)
        return Tensor._make(np.asarray(index, dtype=np.int64), False)

    # --------------------------------------------------------------- shape
    def reshape(self, *shape: int | tuple[int, ...]) -> "Tensor":
        """The same data in a new shape (``-1`` infers one axis)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.Reshape.apply(self, shape=shape)

    def view(self, *shape: int | tuple[int, ...]) -> "Tensor":
        """PyTorch's name for :meth:`reshape`: ``t.view(2, -1)`` or ``t.view((2, -1))``.

        Like every op here it records its own backward; unlike PyTorch's, it
        also accepts a tensor whose memory a view could not describe (it copies).
        """
        return self.reshape(*shape)

    def unsqueeze(self, dim: int) -> "Tensor":
        """Insert an axis of length 1 at ``dim`` (``-1`` appends one), as in PyTorch."""
        return self.reshape(np.expand_dims(self.data, dim).shape)  # expand_dims names a bad dim

    def squeeze(self, dim: int | tuple[int, ...] | None = None) -> "Tensor":
        """Remove axes of length 1: all of them, or those among ``dim`` (as in PyTorch).

        An axis in ``dim`` whose length is not 1 stays, without an error.
        """
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        rank = max(self.ndim, 1)  # a 0-d tensor has one axis to name, as in PyTorch
        for d in dims:
            if not -rank <= d < rank:
                raise np.exceptions.AxisError(d, self.ndim, "squeeze")
        drop = {d % rank for d in dims}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in drop or n != 1))

    def transpose(self, *axes: int) -> "Tensor":
        """Permute the axes; with no arguments, reverse them (like NumPy)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.Transpose.apply(self, axes=axes or None)

    # ---------------------------------------------------------------- dtype
    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> "Tensor":
        """This tensor in another dtype, like PyTorch's ``to``; differentiable.

        ``t.to(minidl.float64)``, ``t.to(other_tensor)`` (its dtype) and
        ``t.to("cpu")`` all work; ``"cpu"`` is minidl's only device, so it
        changes nothing. In the same dtype it returns ``self``. Cast to
        another floating dtype, the gradient flows back cast to this tensor's
        dtype; cast to an integer or bool dtype, the result has no gradient.

        Raises
        ------
        ValueError
            For a device other than the CPU.
        TypeError
            For a dtype minidl tensors cannot hold.
        """
        dtype = dtype_of_to(args, dtype, device, "to")
        if dtype is None or np.dtype(dtype) == self.dtype:
            return self
        target = np.dtype(dtype)
        if target not in SUPPORTED_DTYPES:
            raise TypeError(f"to({target}): minidl tensors hold {_SUPPORTED_NAMES}, not {target}")
        if target not in FLOAT_DTYPES:
            return Tensor._make(self.data.astype(target), False)  # no gradient to an integer
        return _ops.Cast.apply(self, dtype=target)

    def float(self) -> "Tensor":
        """This tensor as float32 (``to(minidl.float32)``)."""
        return self.to(np.float32)

    def double(self) -> "Tensor":
        """This tensor as float64 (``to(minidl.float64)``)."""
        return self.to(np.float64)

    def long(self) -> "Tensor":
        """This tensor as int64 (``to(minidl.int64)``), with no gradient."""
        return self.to(np.int64)

    # ---------------------------------------------------------- elementwise
    def exp(self) -> "Tensor":
        """``e ** x`` elementwise."""
        return _ops.Exp.apply(self)

    def log(self) -> "Tensor":
        """Natural logarithm elementwise."""
        return _ops.Log.apply(self)

    def sqrt(self) -> "Tensor":
        """Square root elementwise."""
        return _ops.Sqrt.apply(self)

    def abs(self) -> "Tensor":
        """Absolute value elementwise (gradient 0 at 0)."""
        return _ops.Abs.apply(self)

    def relu(self) -> "Tensor":
        """``max(x, 0)`` elementwise (gradient 0 at 0)."""
        return _ops.ReLU.apply(self)

    def tanh(self) -> "Tensor":
        """Hyperbolic tangent elementwise."""
        return _ops.Tanh.apply(self)

    def sigmoid(self) -> "Tensor":
        """Logistic sigmoid ``1 / (1 + e ** -x)`` elementwise."""
        return _ops.Sigmoid.apply(self)


def as_tensor(x: Any) -> Tensor:
    """Return ``x`` if it is a Tensor, else a constant Tensor wrapping it."""
    if isinstance(x, Tensor):
        return x
    return Tensor._make(_to_array(x), False)


def _raw(x: Any) -> Any:
    """The data of a Tensor, or ``x`` itself."""
    return x.data if isinstance(x, Tensor) else x


def _lift(other: Any, like: Tensor) -> Any:
    """Prepare the other operand of a binary op.

    A Python number takes the tensor's floating dtype, so ``x * 2.0`` stays
    float32 for a float32 ``x`` (NumPy would make a 0-d float64 array of the
    2.0 and promote). Anything else becomes a Tensor by :func:`as_tensor`.
    """
    if isinstance(other, (int, float)) and like.data.dtype in FLOAT_DTYPES:
        return Tensor._make(np.asarray(other, dtype=like.data.dtype), False)
    return as_tensor(other)


# Imported last: ops and the engine need the Tensor class defined above.
from minidl.autograd import engine as _engine  # noqa: E402
from minidl.autograd import ops as _ops  # noqa: E402


def dtype_of_to(args: tuple, dtype: Any, device: Any, where: str) -> Any:
    """The dtype that ``to(*args, dtype=, device=)`` asks for (None: keep it), as PyTorch reads it.

    Shared by :meth:`Tensor.to` and :meth:`minidl.nn.Module.to`. A positional
    tensor gives its dtype, a string naming a device (``"cpu"``, ``"cuda:0"``)
    is the device, anything else is the dtype.

    Raises
    ------
    ValueError
        For a device other than the CPU, named after ``where``.
    """
    for arg in args:
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif isinstance(arg, str) and arg.split(":")[0] in _DEVICES:
            device = arg
        else:
            dtype = arg
    if device is not None and str(device) != "cpu":
        raise ValueError(
            f"{where}({device!r}): minidl runs on the CPU only (its data are NumPy arrays); "
            "use 'cpu' or leave the device out"
        )
    return dtype
