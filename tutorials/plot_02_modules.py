"""
Layers and your own ``nn.Module``
=================================

The previous tutorial trained a network out of bare tensors. Real models are
written as *modules*: a class that holds its parameters and its submodules
and says in ``forward`` what to compute. minidl's :class:`~minidl.nn.Module`
works like PyTorch's, so the habits you may already have carry over. This
tutorial writes a small module by hand, looks inside it
(``parameters()``, ``named_parameters()``, ``state_dict()``), trains it on
the bundled digits, and ends with the PyTorch habits that work the same way
here: ``minidl.nn.functional``, ``==`` on tensors, ``dim=``, ``.view``,
``.argmax`` and ``minidl.cat``.

The course assignment that goes with this tutorial: :doc:`/assignments/layers`.
"""

# %%
# A module of your own
# --------------------
# Subclass :class:`~minidl.nn.Module`, call ``super().__init__()`` first, then
# assign what the module holds as attributes. A :class:`~minidl.nn.Parameter`
# assigned to an attribute is registered as a parameter of this module; a
# module assigned to an attribute (here two :class:`~minidl.nn.Linear` layers)
# is registered as a *submodule*, and its parameters become this module's
# too. ``forward`` says what one call computes; call the module itself
# (``net(x)``), not ``forward``, as in PyTorch.
import matplotlib.pyplot as plt
import numpy as np

import minidl
import minidl.nn.functional as F  # the same module as minidl.functional
from minidl import nn, optim
from minidl.data import DataLoader, load_digits


class TinyNet(nn.Module):
    """Two linear layers with a ReLU between them, and a learned temperature."""

    def __init__(self, inputs: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(inputs, hidden)  # submodules: registered by assignment
        self.out = nn.Linear(hidden, classes)
        self.log_temperature = nn.Parameter(np.zeros(1, dtype=np.float32))  # a parameter

    def forward(self, x):
        x = x.view(x.shape[0], -1)  # N x 1 x 8 x 8 images -> N x 64 rows, as in PyTorch
        x = F.relu(self.hidden(x))
        return self.out(x) / self.log_temperature.exp()


minidl.manual_seed(0)
net = TinyNet(64, 32, 10)
print(net)

# %%
# Looking inside
# --------------
# ``named_parameters()`` walks the module and its submodules and names each
# parameter by where it lives: the module's own parameters first, then each
# submodule's in the order they were assigned, as in PyTorch.
# ``parameters()`` gives the same tensors without names, which is what an
# optimizer takes. Each parameter's ``.data`` is a
# NumPy array (minidl's one big difference from PyTorch: see
# :doc:`/pytorch`).
for name, parameter in net.named_parameters():
    print(f"{name:18s} {str(parameter.shape):10s} {parameter.data.dtype}")
print("parameters in all:", sum(q.numel() for q in net.parameters()))

# %%
# ``state_dict()`` is a dictionary of copies of those arrays, by the same
# names: what you save to disk, and what ``load_state_dict`` puts back into
# a module of the same shape. A second ``TinyNet`` made from another seed
# differs, until it loads the first one's state:
state = net.state_dict()
print({name: array.shape for name, array in state.items()})
minidl.manual_seed(1)
other = TinyNet(64, 32, 10)
print("same weights before:", np.array_equal(other.hidden.weight.data, net.hidden.weight.data))
other.load_state_dict(state)
print("same weights after: ", np.array_equal(other.hidden.weight.data, net.hidden.weight.data))

# %%
# Training it
# -----------
# The loop is PyTorch's: a :class:`~minidl.data.DataLoader` of shuffled
# batches, forward, loss, ``zero_grad``, ``backward``, ``step``. Three epochs
# over the 1442 training digits take a moment.
train, test = load_digits()
loader = DataLoader(train, batch_size=32, shuffle=True)
optimizer = optim.Adam(net.parameters(), lr=0.01)
losses = []
for epoch in range(3):
    for images, labels in loader:
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"epoch {epoch + 1}: last batch's loss {losses[-1]:.3f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(losses, linewidth=1)
ax.set(xlabel="step (batch of 32)", ylabel="cross-entropy loss", title="training TinyNet")
fig.tight_layout()

# %%
# PyTorch habits that work here
# -----------------------------
# Accuracy as you would write it in PyTorch: ``.argmax(dim=1)`` picks each
# row's class, ``==`` compares elementwise and gives a tensor of booleans,
# ``.float().mean()`` turns it into a fraction, and ``float(...)`` (or
# ``.item()``) into a Python number. Evaluation needs no graph, so it runs
# under :func:`minidl.no_grad`.
test_images, test_labels = (minidl.tensor(a) for a in test.arrays)
with minidl.no_grad():
    predicted = net(test_images).argmax(dim=1)
correct = predicted == test_labels
print(correct[:8])
print(f"test accuracy: {float(correct.float().mean()):.3f}")

# %%
# Reductions take ``dim=`` (or NumPy's ``axis=``), and ``keepdim=``;
# :func:`minidl.cat` joins tensors along a dimension, and gradients flow
# back through it into each piece:
a = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
b = minidl.tensor([[5.0, 6.0]], requires_grad=True)
joined = minidl.cat([a, b], dim=0)
print(joined)
print("sum over dim=1:", joined.sum(dim=1))
joined.sum(dim=0).sum().backward()
print("a.grad:", a.grad.tolist(), " b.grad:", b.grad.tolist())

# %%
# Every difference that remains between minidl and PyTorch is listed on
# :doc:`/pytorch`. The next tutorial trains a convolutional network on the
# same digits, with a progress bar, threads and a confusion matrix.
