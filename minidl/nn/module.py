"""``Module``: the base class of every layer and model.

A module keeps three kinds of state in ordered dictionaries that
``__setattr__`` fills as attributes are assigned, just as in PyTorch:

- parameters (:class:`~minidl.nn.Parameter`): learned by the optimizer;
- buffers (``register_buffer``): arrays that are state but not learned, such
  as batch norm's running statistics;
- submodules: any attribute that is itself a Module.

``parameters()``, ``state_dict()``, ``train()`` and friends walk this tree.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

from minidl.autograd.tensor import dtype_of_to
from minidl.nn.parameter import Parameter


class Module:
    """Base class of layers and models: subclass it and write ``forward``.

    Examples
    --------
    >>> import minidl.nn as nn
    >>> class TwoLayer(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Linear(4, 8)
    ...         self.out = nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).relu())
    >>> [name for name, _ in TwoLayer().named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registry
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran: "
                "call super().__init__() first"
            )
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: np.ndarray | None) -> None:
        """Register ``array`` as state that is saved but not learned (e.g. running statistics)."""
        if "_buffer_names" not in self.__dict__:
            object.__setattr__(self, "_buffer_names", set())
        self._buffer_names.add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (None keeps the name with no parameter, e.g. no
        bias)."""
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: "Module") -> None:
        """Register ``module`` as a submodule called ``name``."""
        self._modules[name] = module

    # ------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the module's output; every subclass defines it."""
        raise TypeError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """Yield ``(name, module)`` for this module and every module below it, depth first."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        """Yield this module and every module below it."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """Yield ``(name, module)`` for the direct submodules."""
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        """Yield the direct submodules."""
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted name, parameter)`` for every parameter, each once."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        """Yield every parameter (what an optimizer needs)."""
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(dotted name, array)`` for every buffer that is set."""
        for module_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buf

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch norm uses batch statistics)."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default, like PyTorch) or to zeros in
        place."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.fill(0)

    # ---------------------------------------------------------------- dtype
    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> "Module":
        """Convert every floating-point parameter and buffer to ``dtype``, in place.

        ``model.to(np.float64)``, ``model.to(dtype=np.float64)`` and
        ``model.to(some_tensor)`` (its dtype) work as in PyTorch. minidl runs
        on the CPU only: ``model.to("cpu")`` is accepted and changes nothing.
        The parameters stay the same objects (only their ``.data`` and
        ``.grad`` are converted), so an optimizer built before still holds
        them; its state keeps the old dtype, so build it after converting, as
        in PyTorch.

        Parameters
        ----------
        *args : dtype, str or Tensor
            A dtype (``np.float32``, ``np.float64`` or their names), a device
            name, or a tensor whose dtype to take.
        dtype : dtype, optional
        device : str, optional
            Only ``"cpu"``.

        Returns
        -------
        Module
            ``self``, so that ``model = Net().to(np.float64)`` reads naturally.

        Raises
        ------
        ValueError
            For a device other than the CPU.
        TypeError
            If ``dtype`` is not float32 or float64.
        """
        dtype = dtype_of_to(args, dtype, device, f"{type(self).__name__}.to")
        if dtype is None:
            return self
        target = np.dtype(dtype) if _names_a_dtype(dtype) else None
        if target is None or target.name not in ("float32", "float64"):
            raise TypeError(
                f"{type(self).__name__}.to: parameters can be float32 or float64, got {dtype!r}"
            )
        # copy=False: arrays already in the target dtype stay the very same arrays.
        for param in self.parameters():
            param.data = param.data.astype(target, copy=False)
            if param.grad is not None:
                param.grad = param.grad.astype(target, copy=False)
        for module in self.modules():
            for name, buf in module._buffers.items():
                if isinstance(buf, np.ndarray) and buf.dtype.kind == "f":
                    module._buffers[name] = buf.astype(target, copy=False)
        return self

    def float(self) -> "Module":
        """Convert the floating-point parameters and buffers to float32: ``to(np.float32)``."""
        return self.to(np.float32)

    def double(self) -> "Module":
        """Convert the floating-point parameters and buffers to float64: ``to(np.float64)``."""
        return self.to(np.float64)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Return copies of every parameter and buffer, by dotted name."""
        state: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, param in self.named_parameters():
            state[name] = param.data.copy()
        for name, buf in self.named_buffers():
            state[name] = np.array(buf, copy=True)
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values from ``state`` into this module's parameters and buffers.

        Parameters
        ----------
        state : dict
            Dotted names to arrays, as returned by :meth:`state_dict`.
        strict : bool, default True
            Require the keys to match exactly.

        Raises
        ------
        KeyError
            Listing the missing and unexpected keys (strict mode).
        ValueError
            Naming the first entry whose shape does not match.
        """
        targets = {name: p for name, p in self.named_parameters()}
        buffers = {name: (module, key) for module_name, module in self.named_modules()
                   for key in module._buffers
                   for name in [f"{module_name}.{key}" if module_name else key]}
        missing = [k for k in [*targets, *buffers] if k not in state]
        unexpected = [k for k in state if k not in targets and k not in buffers]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for name, value in state.items():
            value = np.asarray(value)
            if name in targets:
                current = targets[name].data
            elif name in buffers:
                module, key = buffers[name]
                current = module._buffers[key]
            else:
                continue
            if current is not None and np.shape(current) != value.shape:
                raise ValueError(
                    f"load_state_dict: {name!r} has shape {value.shape} in the state dict but "
                    f"{np.shape(current)} in the model"
                )
        for name, value in state.items():
            if name in targets:
                targets[name].data[...] = value
            elif name in buffers:
                module, key = buffers[name]
                if module._buffers[key] is None or np.ndim(module._buffers[key]) == 0:
                    module._buffers[key] = np.array(value, copy=True)
                else:
                    module._buffers[key][...] = value

    # ------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr; layers override it."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + "\n" + "\n".join(lines) + "\n)"


def _names_a_dtype(value: Any) -> bool:
    """Whether NumPy reads ``value`` as a dtype (``"float64"`` does, ``"cpu"`` does not)."""
    try:
        np.dtype(value)
    except TypeError:
        return False
    return value is not None  # np.dtype(None) is float64, but None names nothing
