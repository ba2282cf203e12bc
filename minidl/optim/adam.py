"""Adam (Kingma & Ba, 2015), the update rule of PyTorch's Adam."""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

from minidl.optim.optimizer import Optimizer, check_non_negative


class Adam(Optimizer):
    """Adam with bias correction and optional L2 weight decay, as ``torch.optim.Adam``::

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        p = p - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

    Parameters
    ----------
    params : iterable of Tensor or of dicts
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0

    Raises
    ------
    ValueError
        If ``lr``, ``eps`` or ``weight_decay`` is not a number >= 0 (NaN
        included), or ``betas`` is not two numbers in [0, 1).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        check_non_negative("Adam", lr=lr, eps=eps, weight_decay=weight_decay)
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else (betas,)
        if len(betas) != 2 or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas}")
        super().__init__(
            params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        )

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = (
                group["lr"],
                group["betas"],
                group["eps"],
                group["weight_decay"],
            )
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + wd * p.data if wd else p.grad
                state = self.state.setdefault(id(p), {})
                if "step" not in state:
                    state.update(
                        step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data)
                    )
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                denom = np.sqrt(v / (1 - beta2**t)) + eps
                p.data -= (lr / (1 - beta1**t)) * m / denom
