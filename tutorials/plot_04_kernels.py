"""
Layers and kernels: im2col from NumPy to Cython
===============================================

A convolution layer spends its time in two places: a matrix product, which
NumPy hands to BLAS, and the bookkeeping that lays every receptive field out
as a column of a matrix so that one product does the whole layer. That
bookkeeping is *im2col* ("image to columns"); its adjoint, *col2im*, brings
gradients back. Max pooling is the other sliding-window kernel of a CNN.

minidl writes each of these kernels twice: a NumPy reference in
``minidl/kernels/reference.py``, to read first, and a compiled Cython twin in
``csrc/``, which gives the same result bit for bit. This tutorial shows what
im2col computes on a tiny image, reads both versions, checks that they agree,
builds a convolution from one matrix product, tests that col2im is the adjoint
of im2col, and finally measures how much the compiled kernels gain, on one
thread and on two.

The course assignment that goes with this tutorial: :doc:`/assignments/kernels`.
"""

# %%
# im2col on a 4x4 image
# ---------------------
# Take one image with one channel, its pixels numbered 0 to 15, and a 3x3
# window. The window fits in 2 x 2 = 4 places, so the convolution has 4
# output pixels. im2col makes one *column* per output pixel, holding the 9
# input pixels under the window there, in (channel, kernel row, kernel
# column) order: a matrix of shape ``(C*KH*KW, N*OH*OW) = (9, 4)``.
import ast
import inspect
import os
import time
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

import minidl
import minidl.functional as F
import minidl.kernels as K
from minidl.kernels import reference

x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
print("x[0, 0] =")
print(x[0, 0])
cols = K.im2col(x, kernel_size=3)
print("\nim2col(x, 3), shape", cols.shape)
print(cols)

# %%
# Read a column top to bottom: column 0 is the window in the top-left corner,
# ``0 1 2 4 5 6 8 9 10``, the image's 3x3 block there, flattened row by row.
# Read a row left to right: row ``(kh, kw)`` holds the pixel at offset
# ``(kh, kw)`` inside each of the four windows, which is the image shifted by
# ``(kh, kw)``. Row 4, the centre of the kernel, is ``5 6 9 10``, the four
# pixels that are centres of a window.
#
# With ``padding=1`` the window also fits over the border, where it sees
# zeros: 16 output pixels, so 16 columns, and a "same" convolution.
padded_cols = K.im2col(x, kernel_size=3, padding=1)
print("im2col(x, 3, padding=1), shape", padded_cols.shape)
print(padded_cols.astype(int))

# %%
# The NumPy reference
# -------------------
# Here are the two helpers the reference calls, then the reference itself
# without its (long) docstring. NumPy's ``sliding_window_view`` gives every
# window as a view, an array of shape ``(N, C, OH, OW, KH, KW)`` that copies
# nothing. Moving the window's own axes ``(C, KH, KW)`` to the front and
# reshaping to two dimensions then copies the data once, in NumPy's C loops.
# There is no Python loop per pixel, per window or even per image.


def without_docstring(function):
    """The source of ``function`` with its docstring cut out."""
    source = inspect.getsource(function)
    docstring = ast.parse(source).body[0].body[0]  # the first statement of the body
    lines = source.splitlines()
    return "\n".join(lines[: docstring.lineno - 1] + lines[docstring.end_lineno :])


print(inspect.getsource(reference._pad))
print(inspect.getsource(reference._windows))
print(without_docstring(reference.im2col))

# %%
# The compiled kernel
# -------------------
# The Cython kernel in ``csrc/im2col.pyx`` writes the same copy as explicit
# loops over C arrays. It never builds the padded image: for each kernel
# offset it works out which output pixels read from inside the image
# (``_inside``), zeroes the row of ``cols``, and copies only those. The outer
# loop is an OpenMP ``prange`` over the images of the batch: each thread fills
# the columns of its own images, so no two threads write the same memory and
# the result does not depend on the number of threads. Here is the per-image
# loop nest, read from the source file of this checkout:
checkout = Path(minidl.__file__).resolve().parents[1]
pyx = checkout / "csrc" / "im2col.pyx"
if pyx.is_file():
    source = pyx.read_text()
    start = source.index("cdef void _im2col_image(")
    stop = source.index("def im2col(", start)
    print(source[start:stop].rstrip())
else:  # minidl installed from a wheel, which holds the compiled module only
    print("csrc/im2col.pyx is in minidl's source repository, not in an installed wheel")

# %%
# Both backends agree
# -------------------
# ``minidl.kernels`` forwards every call to the active backend: ``"cython"``
# by default, or the reference inside ``with K.use("numpy")``. Every layer of
# ``minidl.nn`` calls the kernels this way, so switching the backend switches
# a whole network. Here both run on a batch with stride 2 and padding 1, in
# float64, and the results are compared exactly, not to a tolerance: the
# kernels only copy, compare and add in the same order.
rng = np.random.default_rng(0)
batch = rng.standard_normal((3, 2, 7, 9))
grad_cols = rng.standard_normal(K.im2col(batch, 3, 2, 1).shape)
grad_pooled = rng.standard_normal(K.maxpool2d_forward(batch, 3, 2, 1)[0].shape)


def all_kernels():
    """Every sliding-window kernel once, through the active backend."""
    pooled, indices = K.maxpool2d_forward(batch, 3, 2, 1)
    return {
        "im2col": K.im2col(batch, 3, 2, 1),
        "col2im": K.col2im(grad_cols, batch.shape, 3, 2, 1),
        "maxpool2d_forward": pooled,
        "  and its indices": indices,
        "maxpool2d_backward": K.maxpool2d_backward(grad_pooled, indices, batch.shape, 3, 2, 1),
    }


compiled = all_kernels()
with K.use("numpy"):
    print("inside the with block the backend is", K.backend())
    from_numpy = all_kernels()
print("after it, the backend is", K.backend())
for name in compiled:
    print(f"{name:<19} identical: {np.array_equal(compiled[name], from_numpy[name])}")

# %%
# A convolution is one matrix product
# -----------------------------------
# With the receptive fields as columns, a convolution with ``F`` filters of
# shape ``(C, KH, KW)`` is the ``(F, C*KH*KW)`` weight matrix times ``cols``:
# every output pixel is a dot product of a filter with its column. The
# result, ``(F, N*OH*OW)``, only needs reshaping into NCHW. Compare it with
# the definition written as loops over images, filters and output pixels.
x = rng.standard_normal((2, 3, 6, 6))
w = rng.standard_normal((4, 3, 3, 3))
n, c, height, width = x.shape  # padding 1 keeps a 3x3 convolution's output 6x6
f, kh, kw = w.shape[0], w.shape[2], w.shape[3]

cols = K.im2col(x, (kh, kw), stride=1, padding=1)
out = (w.reshape(f, -1) @ cols).reshape(f, n, height, width).transpose(1, 0, 2, 3)

xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
direct = np.zeros((n, f, height, width))
for img in range(n):
    for filt in range(f):
        for i in range(height):
            for j in range(width):
                direct[img, filt, i, j] = np.sum(xp[img, :, i : i + kh, j : j + kw] * w[filt])

layer = F.conv2d(minidl.tensor(x, dtype=np.float64), minidl.tensor(w, dtype=np.float64), padding=1)
print("cols:", cols.shape, " weight matrix:", w.reshape(f, -1).shape, " output:", out.shape)
print("largest |matmul - loops|:        ", np.abs(out - direct).max())
print("largest |F.conv2d - loops|:      ", np.abs(layer.data - direct).max())

# %%
# The loops make ``2 * 4 * 6 * 6 = 288`` small dot products from Python; the
# matrix product makes them all in one BLAS call. That is the whole trick of
# ``minidl.functional.conv2d``; its backward is two more products, the weight
# gradient ``g @ cols.T`` and the input gradient ``col2im(W.T @ g)``.
#
# col2im is the adjoint of im2col
# -------------------------------
# im2col is linear: ``cols = A x`` for a (large, never built) 0/1 matrix
# ``A``. The chain rule needs ``A^T``, which takes each entry of a column back
# to the pixel it came from and *adds* the entries that meet there, because a
# pixel sits in several windows. That is ``col2im``. The "dot-product test"
# checks an adjoint without building ``A``: for any ``x`` and ``y``,
# ``<A x, y>`` must equal ``<x, A^T y>``.
for stride, padding in [(1, 0), (1, 1), (2, 1)]:
    y = rng.standard_normal(K.im2col(x, 3, stride, padding).shape)
    left = np.vdot(K.im2col(x, 3, stride, padding), y)
    right = np.vdot(x, K.col2im(y, x.shape, 3, stride, padding))
    print(f"stride {stride}, padding {padding}: <im2col(x), y> = {left:+.10f}, "
          f"<x, col2im(y)> = {right:+.10f}")

# %%
# Folding back columns of ones counts how many windows each pixel lies in:
# on the 4x4 image with a 3x3 window the corners are in one window and the
# four centre pixels in all four. So ``col2im(im2col(x))`` is *not* ``x``:
# col2im is the adjoint, not the inverse.
ones = np.ones((1, 1, 4, 4))
print(K.col2im(K.im2col(ones, 3), ones.shape, 3)[0, 0])

# %%
# How much faster is the compiled kernel?
# ---------------------------------------
# Now the shapes of the course: a batch of 64 images with 16 channels, at
# 8x8 (the bundled digits) and 28x28 (MNIST), a 3x3 convolution window with
# padding 1 and a 2x2 max pool. For each kernel we time the NumPy reference,
# the Cython kernel on one OpenMP thread and on two. Each repeat times the
# three variants one after the other, so that they share whatever else the
# machine is doing, and a repeat makes enough calls to last about two
# milliseconds; we keep the median of 15 repeats. This is deliberately cheap:
# ``benchmarks/bench_kernels.py`` measures more shapes more carefully.
#
# These numbers come from whatever machine built this page, often a small
# shared one, and change from run to run: read the ratios, not the
# milliseconds, and expect them to wobble. A variant that was unlucky, with
# another program on its core during most of its repeats, shows up as a bar
# that points down.
REPEATS = 15


def seconds_per_call(call, calls):
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


def time_side_by_side(numpy_call, cython_call):
    """Seconds per call in each repeat: NumPy reference, Cython on 1 thread, Cython on 2."""
    variants = [(numpy_call, 1), (cython_call, 1), (cython_call, 2)]
    calls = []
    for call, threads in variants:  # warm up, and size each repeat to about 2 ms
        K.set_num_threads(threads)
        calls.append(max(1, round(0.002 / max(seconds_per_call(call, 1), 1e-7))))
    samples = [[], [], []]
    for _ in range(REPEATS):
        for (call, threads), count, times in zip(variants, calls, samples):
            K.set_num_threads(threads)
            times.append(seconds_per_call(call, count))
    return [np.array(times) for times in samples]


def kernel_calls(size):
    """(name, NumPy call, compiled call) for each kernel on a 64x16 batch of size x size.

    ``reference`` is the NumPy module; ``K`` runs the active backend, Cython.
    """
    images = rng.standard_normal((64, 16, size, size)).astype(np.float32)
    columns = reference.im2col(images, 3, 1, 1)
    pooled, indices = reference.maxpool2d_forward(images, 2)
    grad = rng.standard_normal(pooled.shape).astype(np.float32)
    return [
        ("im2col", partial(reference.im2col, images, 3, 1, 1), partial(K.im2col, images, 3, 1, 1)),
        ("col2im", partial(reference.col2im, columns, images.shape, 3, 1, 1),
         partial(K.col2im, columns, images.shape, 3, 1, 1)),
        ("maxpool fwd", partial(reference.maxpool2d_forward, images, 2),
         partial(K.maxpool2d_forward, images, 2)),
        ("maxpool bwd", partial(reference.maxpool2d_backward, grad, indices, images.shape, 2),
         partial(K.maxpool2d_backward, grad, indices, images.shape, 2)),
    ]


before = K.get_num_threads()
print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
      f"float32, median of {REPEATS} repeats")
print(f"{'kernel':<12} {'image':>6} {'numpy ms':>9} {'cy 1T ms':>9} {'cy 2T ms':>9} "
      f"{'np/cy1':>7} {'cy1/cy2':>8}")
results = {}
try:
    for size in (8, 28):
        for name, numpy_call, cython_call in kernel_calls(size):
            numpy_t, one_t, two_t = time_side_by_side(numpy_call, cython_call)
            # Ratios within each repeat (its three variants ran back to back), then their
            # median and range: the machine's speed drifts between repeats, not within one.
            results[name, size] = numpy_t / one_t, one_t / two_t
            numpy_s, one_s, two_s = (float(np.median(t)) for t in (numpy_t, one_t, two_t))
            print(f"{name:<12} {f'{size}x{size}':>6} {numpy_s * 1e3:9.3f} {one_s * 1e3:9.3f} "
                  f"{two_s * 1e3:9.3f} {np.median(numpy_t / one_t):6.1f}x "
                  f"{np.median(one_t / two_t):7.2f}x")
finally:
    K.set_num_threads(before)
print(f"load average {os.getloadavg()[0]:.2f} at the end")

# %%
# The same ratios as bars, on a log scale so that "twice as fast" and "twice
# as slow" look the same size: each bar starts at 1x (no change) and goes up
# for a speedup, down for a slowdown. On the left, how many times faster the
# compiled kernel is than the reference, both on one thread; on the right,
# how much a second OpenMP thread speeds the compiled kernel up (2x is the
# most two cores can give). Each bar is the median over the 15 repeats of
# the ratio within a repeat, and its black line spans the lowest to the
# highest of those ratios.
names = ["im2col", "col2im", "maxpool fwd", "maxpool bwd"]
positions = np.arange(len(names))
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
titles = ["Cython (1 thread) vs NumPy reference", "Cython: 2 threads vs 1 thread"]
for panel, (ax, title) in enumerate(zip(axes, titles)):
    for offset, size in ((-0.2, 8), (0.2, 28)):
        samples = [results[name, size][panel] for name in names]
        ratios = np.array([np.median(r) for r in samples])
        spread = [ratios - [r.min() for r in samples], [r.max() for r in samples] - ratios]
        bars = ax.bar(positions + offset, ratios - 1, bottom=1, width=0.4,
                      label=f"64x16x{size}x{size}")
        ax.errorbar(positions + offset, ratios, yerr=spread, fmt="none", color="black",
                    linewidth=0.8, capsize=2)
        ax.bar_label(bars, labels=[f"{r:.2g}x" for r in ratios], fontsize=8)
    ax.axhline(1.0, color="0.3", linewidth=1)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(positions, names)
    ax.set(ylabel="speedup (times faster)", title=title)
    ax.margins(y=0.1)
    ax.legend(title="input (N, C, H, W)", fontsize=8)
fig.suptitle(f"measured on the machine that built these docs (median of {REPEATS} repeats, "
             "lines: range)", fontsize=10)
fig.tight_layout()

slower = sorted(f"{name} {size}x{size}" for (name, size), (_, two) in results.items()
                if np.median(two) < 1)
print("a second thread made these calls slower on this build:", ", ".join(slower) or "none")

# %%
# Why these numbers
# -----------------
# *im2col* gains the least, and that is honest, not a weak kernel. The
# reference is already a single strided copy done in C by NumPy (the view
# from ``sliding_window_view``, then one ``reshape``); the compiled kernel
# does the same copy. Both are limited by memory, not by arithmetic, since
# there is none. What Cython saves is the padded copy of the input that
# ``np.pad`` makes first, and the overhead of NumPy's general strided loops on
# rows only 8 or 28 elements long.
#
# *col2im* has more to gain: its reference runs a Python loop over the
# ``KH * KW = 9`` kernel offsets, each a strided ``+=`` over the whole batch,
# into a padded buffer that is then cropped with one more copy. The compiled
# kernel adds every entry straight into its pixel, image by image, skipping
# the entries that came from the padding, so it needs no padded buffer.
#
# *Max-pool forward* gains the most: the reference copies every window side
# by side (``KH * KW`` values per output), then runs ``argmax`` and two
# gathers over that copy, while the compiled kernel scans each window once
# and keeps the best value and its position in registers. *Max-pool
# backward* replaces ``np.add.at``, NumPy's unbuffered scatter-add, with a
# plain loop.
#
# A second thread can at best halve the time. It has the best chance on the
# 28x28 batch, where each call moves megabytes, though the two threads also
# share one memory bus. On the 8x8 batch a call lasts a fraction of a
# millisecond, and waking a second thread and waiting for it at the end
# takes a good part of that, most of all on the smallest call, the max-pool
# backward. That is why the kernels use at most one
# thread per 32,768 elements of work (:func:`minidl.kernels.set_num_threads`
# gives the upper bound): the smallest calls of a digits network stay on one
# thread.
#
# If the bars on the right point *down*, the page was built while other
# programs kept the cores busy. A parallel loop ends only when its slowest
# thread does, and a thread that has no core to run on waits for the
# operating system's next time slice, a few milliseconds, far longer than
# the whole call on one thread. That is *oversubscription*, more busy threads
# than cores, and it returns whenever several MPI ranks share the cores of
# one machine.
