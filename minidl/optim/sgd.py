"""Stochastic gradient descent with momentum, the update rule of PyTorch's SGD."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from minidl.optim.optimizer import Optimizer, check_non_negative


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay.

    For each parameter ``p`` with gradient ``g``, exactly as ``torch.optim.SGD``::

        g = g + weight_decay * p
        if momentum:
            b = g                                    (first step)
            b = momentum * b + (1 - dampening) * g   (later steps)
            g = g + momentum * b if nesterov else b
        p = p - lr * g

    Parameters
    ----------
    params : iterable of Tensor or of dicts
    lr : float
    momentum, dampening, weight_decay : float, default 0
    nesterov : bool, default False

    Raises
    ------
    ValueError
        If ``lr``, ``momentum``, ``dampening`` or ``weight_decay`` is not a number
        >= 0 (NaN included), or Nesterov momentum is asked for without momentum or
        with dampening.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        check_non_negative("SGD", lr=lr, momentum=momentum, dampening=dampening,
                           weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                # BEGIN SOLUTION sgd
                # decay into g, then the momentum buffer (or Nesterov), then p -= lr * g
                g = p.grad
                if wd:
                    g = g + wd * p.data
                if momentum:
                    state = self.state.setdefault(id(p), {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
                    else:
                        buf *= momentum
                        buf += (1 - group["dampening"]) * g
                    g = g + momentum * buf if group["nesterov"] else buf
                p.data -= lr * g
                # END SOLUTION
