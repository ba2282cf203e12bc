"""Check an op's backward against float64 central differences."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from minidl.autograd.grad_mode import no_grad
from minidl.autograd.tensor import Tensor


def _as_input(x: Any) -> Tensor:
    """Float inputs become float64 leaves that require grad; others stay constants.

    To hold a float input constant, close over it in ``fn`` instead.
    """
    data = np.asarray(x.data if isinstance(x, Tensor) else x)
    if data.dtype.kind != "f":
        return Tensor(data)
    return Tensor(data.astype(np.float64), requires_grad=True)


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-4, seed: int = 0) -> bool:
    """Compare the gradients backward computes with central differences.

    Every floating-point input is copied to float64 and perturbed element by
    element: ``(f(x + eps) - f(x - eps)) / (2 eps)``. A non-scalar output is
    first contracted with a fixed random weight ``v`` (``sum(f(x) * v)``), so
    one backward pass checks the whole vector-Jacobian product. Integer inputs
    (class targets, indices) are passed through unchanged.

    Parameters
    ----------
    fn : callable
        Takes the inputs as Tensors and returns a Tensor.
    *inputs : Tensor or array_like
        Keep them small: the check costs two calls of ``fn`` per element.
    eps : float
        Perturbation size.
    atol, rtol : float
        An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    seed : int
        Seed of the random weights for a non-scalar output.

    Returns
    -------
    bool
        True when every element passes.

    Raises
    ------
    AssertionError
        Naming the input, the element index, and both values, at the first
        element that fails.

    Examples
    --------
    >>> import numpy as np, minidl
    >>> from minidl.testing import gradcheck
    >>> gradcheck(lambda x: (x * x).sum(), np.array([1.0, -2.0]))
    True
    """
    xs = [_as_input(x) for x in inputs]
    out = fn(*xs)
    if not isinstance(out, Tensor) or out.dtype.kind != "f":
        raise TypeError(
            f"gradcheck: fn must return a floating-point Tensor, got {type(out).__name__}"
        )
    weights = np.random.default_rng(seed).standard_normal(out.shape)

    def objective() -> float:
        with no_grad():
            return float((fn(*xs).data * weights).sum())

    if not out.requires_grad:
        raise AssertionError(
            "gradcheck: the output does not depend on any input that requires grad"
        )
    out.backward(weights.astype(out.dtype))

    for i, x in enumerate(xs):
        if not x.requires_grad:
            continue
        analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
        for index in np.ndindex(*x.shape):
            original = x.data[index]
            x.data[index] = original + eps
            plus = objective()
            x.data[index] = original - eps
            minus = objective()
            x.data[index] = original
            numeric = (plus - minus) / (2 * eps)
            if not abs(analytic[index] - numeric) <= atol + rtol * abs(numeric):
                raise AssertionError(
                    f"gradcheck failed for input {i} (shape {x.shape}) at index {index}: "
                    f"analytic gradient {analytic[index]:.8g}, numeric {numeric:.8g} "
                    f"(difference {analytic[index] - numeric:.3g})"
                )
    return True
