"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), as in ``torch.optim``."""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

from minidl.autograd.tensor import Tensor
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
        name = type(self).__name__
        check_non_negative(name, lr=lr, eps=eps, weight_decay=weight_decay)
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else (betas,)
        if len(betas) != 2 or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas}")
        super().__init__(
            params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        )

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            wd = group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                # L2 regularisation: the decay joins the gradient, so it is rescaled by v too.
                g = p.grad + wd * p.data if wd else p.grad
                self._adam_update(p, g, group)

    def _adam_update(self, p: Tensor, g: np.ndarray, group: dict[str, Any]) -> None:
        """Move ``p`` one Adam step along the gradient ``g``, updating its moments."""
        # BEGIN SOLUTION adam
        # update the moments m and v in state, then step with bias-corrected m / (sqrt(v) + eps)
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        state = self.state.setdefault(id(p), {})
        if "step" not in state:
            state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        denom = np.sqrt(v / (1 - beta2**t)) + eps
        p.data -= (lr / (1 - beta1**t)) * m / denom
        # END SOLUTION


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``::

        p = p - lr * weight_decay * p          (decay the weight itself, first)
        m, v, p updated as in Adam, from g alone

    With :class:`Adam`'s ``weight_decay`` the decay is added to the gradient
    and then divided by ``sqrt(v)``, so weights with large gradients are
    barely decayed; here every weight shrinks by the same factor
    ``1 - lr * weight_decay`` per step, whatever its gradient. Only the
    weight-decay line differs from Adam, and the default decay is 0.01, not 0.

    Parameters
    ----------
    params : iterable of Tensor or of dicts
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2

    Raises
    ------
    ValueError
        As :class:`Adam`.

    Examples
    --------
    >>> import minidl, minidl.nn as nn, minidl.optim as optim
    >>> model = nn.Linear(4, 2)
    >>> opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if wd:
                    p.data *= 1 - lr * wd  # decoupled: the gradient never sees the decay
                self._adam_update(p, p.grad, group)
