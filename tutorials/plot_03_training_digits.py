"""
Training a CNN on handwritten digits
====================================

This tutorial trains a small convolutional network, LeNet-style, on the
handwritten digits that ship with minidl, with exactly the loop that the
training job ``python -m minidl.train`` runs. It looks at the data, builds
and prints the model, trains it for 12 epochs, and then asks where it goes
wrong: the loss and accuracy curves, a confusion matrix, and the digits it
still misreads.

The data are the UCI *Optical Recognition of Handwritten Digits* set
(E. Alpaydin and C. Kaynak, 1998, UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49), licensed under Creative Commons Attribution
4.0 (CC BY 4.0). minidl ships a copy inside the package, so nothing is
downloaded.

The course assignment that goes with this tutorial: :doc:`/assignments/layers`.
"""

# %%
# The data
# --------
# :func:`~minidl.data.load_digits` gives 1,797 images of 8x8 pixels, already
# split into a training and a test set. The split is fixed, not random: every
# fifth sample of each class is a test sample, so both sets have the same
# class proportions on every machine. Each pixel counts how many of the 16
# pixels of a 4x4 block of the original 32x32 scan were ink; minidl divides
# by 16, so pixels lie in [0, 1].
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

import minidl
import minidl.functional as F
import minidl.kernels as K
from minidl import models, optim
from minidl.data import DataLoader, RandomSampler, load_digits
from minidl.train import evaluate

SEED = 0
minidl.manual_seed(SEED)
train, test = load_digits()
train_images, train_labels = train.arrays
test_images, test_labels = test.arrays
print(f"train: {train_images.shape} {train_images.dtype}, labels {train_labels.shape}")
print(f"test:  {test_images.shape} {test_images.dtype}, labels {test_labels.shape}")
print("test samples per class:", np.bincount(test_labels))

# %%
# The first 20 training images. At 8x8 they are coarse, but a person reads
# most of them at a glance.
fig, axes = plt.subplots(2, 10, figsize=(10, 2.9))
for ax, image, label in zip(axes.flat, train_images, train_labels):
    ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(str(label), fontsize=11)
    ax.axis("off")
fig.suptitle("bundled digits, with their labels")
fig.tight_layout()

# %%
# The model
# ---------
# :func:`minidl.models.lenet` builds a CNN in the style of LeCun et al.
# (1998): two blocks of 3x3 convolution, ReLU and 2x2 max pooling take the
# 1x8x8 image to 32 channels of 2x2, and two linear layers map those 128
# numbers to 10 class scores (logits). Each ``Conv2d`` runs as im2col and one
# matrix product, and each ``MaxPool2d`` as the compiled pooling kernel (see
# the next tutorial, :ref:`sphx_glr_tutorials_plot_04_kernels.py`).
model = models.lenet(8)
print(model)
print("parameters:", sum(p.data.size for p in model.parameters()))

# %%
# Threads
# -------
# The compiled kernels can run on several OpenMP threads. Here they get one,
# for two reasons.
#
# First, a batch of 32 digits is too small for threads to pay. Most kernel
# calls are below the 32,768 elements of work it takes to give a second
# thread anything to do, and stay on one thread anyway; only the second
# convolution's im2col and col2im (144 x 512 elements) would use two, and
# would gain microseconds.
#
# Second, they are not the only threads. NumPy's matrix products run on a
# separate pool, OpenBLAS's, which starts one thread per core when NumPy is
# loaded (``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` in the environment
# can change that; ``minidl.kernels.set_num_threads`` cannot). After a call,
# the idle threads of each pool used to spin for a while, ready for the next
# one. On two cores, with two threads in each pool, the spinning threads of
# one pool held the cores that the other pool's threads were waiting for,
# and an epoch on two cores with both pools on two threads took many times
# longer than with either pool on one. So ``import minidl``
# tells the OpenMP runtime to put idle threads to sleep
# (``OMP_WAIT_POLICY=PASSIVE``, unless you set it yourself); with both pools
# on two threads the epoch no longer pays that price. On batches this
# small, a second thread has nothing to gain anyway.
# The results do not depend on the thread count; only the time does.
K.set_num_threads(1)

# %%
# Training
# --------
# The hyper-parameters are the defaults of ``python -m minidl.train``: SGD
# with momentum 0.9, learning rate 0.05, weight decay 5e-4, batches of 32,
# and a learning rate that decays along a cosine to zero over the run
# (Loshchilov and Hutter, 2017). The job trains for 20 epochs by default;
# 12 keep this page quick and reach the same test accuracy with this seed.
# Each epoch visits the training set in a new order that depends only on the
# seed and the epoch, which is what lets the job resume from a checkpoint and
# see the same batches.
#
# The loop is the job's :func:`~minidl.train.train_epoch`, written out: a
# forward pass, the loss, ``zero_grad``, ``backward`` and ``step``.
# :func:`~minidl.train.evaluate` is the job's own: it switches the model to
# evaluation mode and measures loss and accuracy on the test set without
# recording a graph.
EPOCHS, BATCH_SIZE = 12, 32
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
scheduler = optim.CosineAnnealingLR(optimizer, T_max=EPOCHS)

step_losses, history = [], []
started = time.perf_counter()
for epoch in range(1, EPOCHS + 1):
    sampler = RandomSampler(train, seed=SEED)
    sampler.set_epoch(epoch)
    model.train()
    epoch_losses = []
    for images, labels in DataLoader(train, batch_size=BATCH_SIZE, sampler=sampler):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        epoch_losses.append(loss.item())
    scheduler.step()
    step_losses += epoch_losses
    test_loss, accuracy = evaluate(model, test)
    history.append((epoch, np.mean(epoch_losses), test_loss, accuracy))
    print(f"epoch {epoch:2d}  loss {np.mean(epoch_losses):.4f}  test loss {test_loss:.4f}  "
          f"test accuracy {accuracy:.4f}")
seconds = time.perf_counter() - started
print(f"test accuracy: {history[-1][3]:.4f}")
print(f"{EPOCHS} epochs of {len(step_losses) // EPOCHS} steps in {seconds:.1f} s, "
      f"evaluation included")

# %%
# The run is deterministic: ``minidl.manual_seed`` fixes the initial weights,
# and the seed fixes the order of the batches. ``python -m minidl.train
# --epochs 12`` runs this same computation and prints the same losses and
# accuracies.
#
# Loss and accuracy
# -----------------
# Left: the loss of every training step (pale) and its mean per epoch,
# against the test loss measured after each epoch, on a log scale. Right: test
# accuracy after each epoch. The first epoch or two show little; then the
# training loss falls by two orders of magnitude, and as the learning rate
# decays to zero the last epochs settle. The test loss levels off well above
# the training loss: the network fits its 1,442 training digits almost
# perfectly, and only part of that carries over to digits it has not seen.
epochs, train_loss, test_loss, accuracy = map(np.array, zip(*history))
steps_per_epoch = len(step_losses) // EPOCHS
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.plot(np.arange(1, len(step_losses) + 1) / steps_per_epoch, step_losses,
         color="C0", alpha=0.3, linewidth=0.8, label="train, each step")
ax1.plot(epochs, train_loss, marker="o", color="C0", label="train, mean of the epoch")
ax1.plot(epochs, test_loss, marker="s", color="C1", label="test, after the epoch")
ax1.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="loss")
ax1.legend()
ax2.plot(epochs, 100 * accuracy, marker="o", color="C2")
ax2.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy",
        ylim=(max(0, 100 * accuracy.min() - 5), 100.5))
ax2.axhline(98, color="0.5", linestyle="--", linewidth=1, label="98%, the job's target")
ax2.legend(loc="lower right")
for ax in (ax1, ax2):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax2.annotate(f"final {100 * accuracy[-1]:.1f}%", (epochs[-1], 100 * accuracy[-1]),
             xytext=(-80, -30), textcoords="offset points", arrowprops={"arrowstyle": "->"})
fig.tight_layout()

# %%
# Where the model is wrong
# ------------------------
# A confusion matrix counts, for every true class (row), which class the
# model predicted (column). A perfect model has all its counts on the
# diagonal; an off-diagonal count says which digit was mistaken for which.
with minidl.no_grad():
    model.eval()
    predicted = model(minidl.tensor(test_images)).data.argmax(axis=1)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (test_labels, predicted), 1)
print(f"{int(np.trace(confusion))} of {len(test_labels)} test digits right, "
      f"{len(test_labels) - int(np.trace(confusion))} wrong")

fig, ax = plt.subplots(figsize=(5.6, 5))
image = ax.imshow(confusion, cmap="Blues")
for true in range(10):
    for guess in range(10):
        count = confusion[true, guess]
        if count:
            dark = count > confusion.max() / 2
            ax.text(guess, true, count, ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
ax.set_xticks(range(10))
ax.set_yticks(range(10))
ax.set(xlabel="predicted class", ylabel="true class", title="confusion matrix, test set")
fig.colorbar(image, ax=ax, label="test digits")
fig.tight_layout()

# %%
# The misread digits themselves, each with what the model predicted and what
# its label says. Several of them are hard for a person too at 8x8 pixels.
wrong = np.flatnonzero(predicted != test_labels)
shown = wrong[:10]
fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(1.3 * max(len(shown), 1) + 0.4, 2.2),
                         squeeze=False)
for ax, index in zip(axes.flat, shown):
    ax.imshow(test_images[index, 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"predicted {predicted[index]}\ntrue {test_labels[index]}", fontsize=10)
    ax.axis("off")
if len(shown) == 0:
    axes[0, 0].axis("off")
    axes[0, 0].set_title("no test digit misread")
fig.suptitle(f"misread test digits ({len(shown)} of {len(wrong)} shown)")
fig.tight_layout()

# %%
# Going further: ``python -m minidl.train --help`` lists the job's options
# (``--model mlp``, ``--optimizer adam``, ``--kernels numpy`` to train on the
# NumPy reference kernels, ``--checkpoint`` and ``--resume``, ``--metrics``
# and ``--plot``).
