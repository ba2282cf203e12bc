"""
Autograd, step by step
======================

minidl computes gradients the way PyTorch does: every operation on a tensor
that requires a gradient records itself in a graph, and ``backward()`` walks
that graph from the loss back to the leaves. This tutorial builds a small
graph, prints it, runs backward, checks the result against finite differences,
and finally trains a tiny network with nothing but these pieces.

The course assignment that goes with this tutorial: :doc:`/assignments/autograd`.
"""

# %%
# A neuron, one op at a time
# --------------------------
# Leaves are the tensors you make yourself. ``requires_grad=True`` asks minidl
# to record what happens to them. Giving tensors a ``name`` makes the printed
# graph easier to read.
import numpy as np

import minidl
from minidl.testing import gradcheck
from minidl.viz import print_graph, to_dot

minidl.manual_seed(0)
x = minidl.tensor([[0.5, -1.0, 2.0]])  # one sample, three features: data, no gradient
w = minidl.randn(3, 1, requires_grad=True)
b = minidl.zeros(1, requires_grad=True)
target = minidl.tensor([[0.25]])
x.name, w.name, b.name = "x", "w", "b"

z = x @ w + b
y = z.tanh()
loss = ((y - target) ** 2).mean()
print("prediction:", y.item(), " loss:", loss.item())

# %%
# Every result remembers the op that made it (its ``grad_fn``) and, through
# it, its inputs. ``print_graph`` walks those links from the loss back to the
# leaves.
print_graph(loss)

# %%
# The same graph as Graphviz DOT text: paste it into any Graphviz viewer, or
# run ``dot -Tsvg`` on it, to see boxes for tensors and ellipses for ops.
print(to_dot(loss))

# %%
# Backward
# --------
# ``loss.backward()`` visits each op once, in reverse order, and calls its
# ``backward`` with the gradient of the loss with respect to the op's output.
# Gradients arrive in the leaves' ``.grad``.
loss.backward()
print("dloss/dw =", w.grad.ravel())
print("dloss/db =", b.grad)

# %%
# By hand, with the chain rule: ``loss = (y - t)^2``, ``y = tanh(z)``,
# ``z = x w + b``, so ``dloss/dz = 2 (y - t) (1 - y^2)``, and then
# ``dloss/dw = x^T dloss/dz`` and ``dloss/db = dloss/dz``.
dz = 2 * (y.data - target.data) * (1 - y.data**2)
print("by hand: dloss/dw =", (x.data.T @ dz).ravel(), " dloss/db =", dz.ravel())

# %%
# Gradients accumulate: a second backward adds to ``.grad``, exactly like
# PyTorch. That is why training loops reset gradients before each step.
loss2 = ((minidl.tanh(x @ w + b) - target) ** 2).mean()
loss2.backward()
print("after a second backward, dloss/db =", b.grad, "(twice the first)")
w.grad = b.grad = None

# %%
# Checking gradients with finite differences
# ------------------------------------------
# :func:`~minidl.testing.gradcheck` perturbs every input element by ``±eps`` in
# float64 and compares ``(f(x + eps) - f(x - eps)) / 2 eps`` with what
# backward computed. Every op in minidl is tested this way.


def neuron_loss(x, w, b):
    return ((minidl.tanh(x @ w + b) - 0.25) ** 2).mean()


print("gradcheck:", gradcheck(neuron_loss, x.data, w.data, b.data))

# %%
# A mistake in a backward does not get past it. Here is a square op whose
# backward forgot the factor 2:


class BadSquare(minidl.Function):
    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, grad):
        return grad * self.a  # wrong: d(a^2)/da = 2a


try:
    gradcheck(lambda a: BadSquare.apply(a).sum(), np.array([1.0, 2.0]))
except AssertionError as err:
    print(err)

# %%
# Hooks: when is a gradient final?
# --------------------------------
# ``register_hook`` calls a function the moment a tensor's gradient is complete
# for this backward pass. In a stack of layers, the last layer's weights are
# final first, while backward is still working on earlier layers. Data
# parallelism uses exactly this moment to start sending gradients.
layers = [minidl.randn(4, 4, requires_grad=True) for _ in range(3)]
for i, weight in enumerate(layers):
    weight.register_hook(lambda grad, i=i: print(f"gradient of layer {i} is ready"))
h = minidl.randn(2, 4)
for weight in layers:
    h = (h @ weight).tanh()
h.sum().backward()

# %%
# ``no_grad`` turns recording off, for evaluation and for updating parameters:
with minidl.no_grad():
    frozen = x @ w + b
print("requires_grad under no_grad:", frozen.requires_grad)

# %%
# Training a tiny network with nothing else
# -----------------------------------------
# These pieces are enough to fit a one-hidden-layer network to a noisy sine
# wave with plain gradient descent. The layer library (``minidl.nn``) and the
# optimizers (``minidl.optim``) only package this loop more conveniently.
import matplotlib.pyplot as plt

rng = np.random.default_rng(0)
xs = np.linspace(-3, 3, 128, dtype=np.float32)[:, None]
ys = np.sin(xs) + 0.1 * rng.standard_normal(xs.shape).astype(np.float32)
inputs, targets = minidl.tensor(xs), minidl.tensor(ys)

w1 = minidl.tensor(rng.normal(0, 1.0, (1, 32)), dtype=np.float32, requires_grad=True)
b1 = minidl.zeros(32, requires_grad=True)
w2 = minidl.tensor(rng.normal(0, 0.2, (32, 1)), dtype=np.float32, requires_grad=True)
b2 = minidl.zeros(1, requires_grad=True)
params = [w1, b1, w2, b2]

losses = []
for step in range(2000):
    prediction = (inputs @ w1 + b1).tanh() @ w2 + b2
    loss = ((prediction - targets) ** 2).mean()
    for p in params:
        p.grad = None
    loss.backward()
    with minidl.no_grad():
        for p in params:
            p.data -= 0.03 * p.grad
    losses.append(loss.item())
print(f"loss: {losses[0]:.3f} at the start, {losses[-1]:.4f} after {len(losses)} steps")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
ax1.plot(losses)
ax1.set(xlabel="step", ylabel="mean squared error", yscale="log", title="training loss")
ax2.scatter(xs, ys, s=8, color="0.6", label="data")
ax2.plot(xs, prediction.data, color="C1", label="network")
ax2.set(xlabel="x", title="fit after training")
ax2.legend()
fig.tight_layout()
