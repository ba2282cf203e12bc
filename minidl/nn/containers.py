"""Containers: modules that hold other modules, named as in ``torch.nn``.

- :class:`Sequential` runs its modules one after another;
- :class:`ModuleList` is a list of modules and :class:`ModuleDict` a dict of
  them; neither has a ``forward``: your own ``forward`` decides how to use
  them.

Why not a plain Python list or dict? A Module finds its parameters by walking
its registered submodules (``_modules``). Modules kept in a plain list are
invisible to that walk: ``parameters()`` misses them, so the optimizer never
updates them, ``state_dict()`` never saves them and ``eval()`` never reaches
them. The containers register each module under its position (``"0"``,
``"1"``, ...) or its key, which is also its name in ``named_parameters()``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from minidl.autograd.tensor import Tensor
from minidl.nn.module import Module


def _check_module(owner: str, where: str, module: Any) -> Module:
    """``module`` itself, or a TypeError naming the container and the position."""
    if not isinstance(module, Module):
        raise TypeError(f"{owner} holds Modules, {where} is a {type(module).__name__}")
    return module


class Sequential(Module):
    """Apply modules one after another.

    Examples
    --------
    >>> import minidl.nn as nn
    >>> nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
    )
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential takes Modules, argument {i} is a {type(module).__name__}"
                )
            self.add_module(str(i), module)

    def forward(self, x: Tensor) -> Tensor:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)


class ModuleList(Module):
    """A list of modules, registered so that ``parameters()`` and ``state_dict()`` see them.

    Index it, iterate over it, ``append``, ``extend`` and ``insert`` as with a
    list; the modules are named by position (``"0.weight"``, ``"1.weight"``,
    ...), renumbered after an insertion or deletion.

    Parameters
    ----------
    modules : iterable of Module, optional

    Raises
    ------
    TypeError
        If an element is not a Module.
    IndexError
        For an index outside the list.

    Examples
    --------
    >>> import minidl.nn as nn
    >>> class Deep(nn.Module):
    ...     def __init__(self, width, depth):
    ...         super().__init__()
    ...         self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
    ...     def forward(self, x):
    ...         for layer in self.layers:
    ...             x = layer(x).relu()
    ...         return x
    >>> [name for name, _ in Deep(4, 2).named_parameters()]
    ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, i: int) -> int:
        """``i`` as a position in ``[0, len)``, counting a negative one from the end."""
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"ModuleList indices are integers or slices, got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ModuleList index {i} is out of range for {n} modules")
        return int(i) % n

    def _renumber(self, modules: list[Module]) -> None:
        """Register ``modules`` as the whole list, named ``"0"``, ``"1"``, ... again."""
        self._modules.clear()
        for i, module in enumerate(modules):
            self._modules[str(i)] = module

    def __getitem__(self, i: int | slice) -> Module | ModuleList:
        modules = list(self._modules.values())
        if isinstance(i, slice):
            return ModuleList(modules[i])
        return modules[self._index(i)]

    def __setitem__(self, i: int, module: Module) -> None:
        self._modules[str(self._index(i))] = _check_module("ModuleList", f"index {i}", module)

    def __delitem__(self, i: int | slice) -> None:
        modules = list(self._modules.values())
        del modules[i if isinstance(i, slice) else self._index(i)]
        self._renumber(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> "ModuleList":
        """Add ``module`` at the end; returns the list, as PyTorch's does."""
        self._modules[str(len(self))] = _check_module("ModuleList", f"index {len(self)}", module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        """Append every module of ``modules``."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Put ``module`` before position ``index`` (anywhere a list's insert may)."""
        modules = list(self._modules.values())
        modules.insert(index, _check_module("ModuleList", f"index {index}", module))
        self._renumber(modules)


class ModuleDict(Module):
    """A dict of modules, registered under their keys, in insertion order.

    ``md[key]``, ``md[key] = module``, ``del md[key]``, ``key in md``,
    ``len``, iteration over the keys, ``keys()``, ``values()``, ``items()``,
    ``update()`` and ``pop()`` work as on a dict; each module's parameters
    are named ``"key.weight"`` and so on.

    Parameters
    ----------
    modules : mapping or iterable of (str, Module) pairs, optional

    Raises
    ------
    TypeError
        If a key is not a string or a value not a Module.
    KeyError
        If a key is empty or contains ``"."`` (it would be ambiguous in a
        dotted parameter name), or on looking up a key that is not there.

    Examples
    --------
    >>> import minidl.nn as nn
    >>> heads = nn.ModuleDict({"digit": nn.Linear(8, 10), "parity": nn.Linear(8, 2)})
    >>> heads["parity"]
    Linear(in_features=8, out_features=2, bias=True)
    >>> list(heads.keys())
    ['digit', 'parity']
    """

    def __init__(
        self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r}; its keys are {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys are strings, got {type(key).__name__} {key!r}")
        if not key or "." in key:
            raise KeyError(f"ModuleDict key {key!r} must be non-empty and contain no '.'")
        self._modules[key] = _check_module("ModuleDict", f"the value for {key!r}", module)

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> list[str]:
        """The keys, in insertion order."""
        return list(self._modules.keys())

    def values(self) -> list[Module]:
        """The modules, in insertion order."""
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        """``(key, module)`` pairs, in insertion order."""
        return list(self._modules.items())

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace the modules of a mapping or of ``(key, module)`` pairs."""
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for key, module in pairs:
            self[key] = module

    def pop(self, key: str) -> Module:
        """Remove ``key`` and return its module."""
        module = self[key]
        del self._modules[key]
        return module
