"""``Optimizer``: parameter groups, per-parameter state, and saving both."""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

from minidl.autograd.tensor import Tensor


def check_non_negative(owner: str, **values: Any) -> None:
    """Raise a ValueError naming the first of ``values`` (by argument) that is not a number >= 0.

    Written ``not value >= 0`` so that NaN, which compares False with everything,
    is refused too: one NaN learning rate turns every weight into NaN.
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
            what = "learning rate" if name == "lr" else name
            raise ValueError(f"{owner}: invalid {what} {value!r}: it must be a number >= 0")


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses write ``step``.

    Parameters
    ----------
    params : iterable of Tensor, or of dicts
        The tensors to update, or groups ``{"params": [...], "lr": ...}`` whose
        keys override ``defaults`` for that group.
    defaults : dict
        Hyper-parameters shared by every group unless overridden.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(param)
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters."""
        group = {**self.defaults, **group, "params": list(group["params"])}
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(
                    f"{type(self).__name__} can only optimize tensors that require grad, "
                    f"got {p!r:.60}"
                )
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to None, or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

    def step(self) -> None:
        """Update every parameter that has a gradient; subclasses define it."""
        raise TypeError(f"{type(self).__name__} does not define step()")

    # ---------------------------------------------------------------- state
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, with parameters referred to by position (as in PyTorch).

        Keys of the per-parameter state are strings (``"0"``, ``"1"``, ...) so
        that :func:`minidl.save` can store it.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {str(index[pid]): {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                                   for k, v in s.items()}
                 for pid, s in self.state.items() if pid in index}
        groups = []
        for group in self.param_groups:
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [index[id(p)] for p in group["params"]]})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, onto this optimizer's parameters."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        params = self._params()
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"a parameter group holds {len(saved['params'])} parameters in the state "
                    f"but {len(group['params'])} in this optimizer"
                )
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for key, s in state_dict["state"].items():
            p = params[int(key)]
            restored = {k: np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) and v.ndim else v
                        for k, v in s.items()}
            for k, v in restored.items():
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(
                        f"optimizer state {k!r} of parameter {key} has shape {v.shape}, "
                        f"the parameter {p.shape}"
                    )
            self.state[id(p)] = restored
