"""
Data-parallel SGD, end to end
=============================

Data parallelism trains one model on ``p`` processes (*ranks*). Every rank
holds a full copy of the model, takes its own ``b / p`` samples of each
global batch of ``b``, and computes the gradient of its own mean loss. An
all-reduce then averages the ``p`` gradients, so every rank holds the
gradient of the mean loss over all ``b`` samples and makes the same update.
Done right, ``p`` ranks compute what one process computes with the whole
batch, only faster.

This tutorial follows one step through minidl, piece by piece: how
:class:`~minidl.parallel.DistributedSampler` shards the data, one step with
the gradients averaged by hand (:func:`~minidl.parallel.allreduce_gradients`),
the same step with :class:`~minidl.parallel.DistributedDataParallel`, a check
that several steps on 2 and 4 ranks equal one process, the timeline of a
step with and without overlapping communication, and how the time per epoch
scales with the number of ranks.

This page is built by one process, so every part that needs several ranks
is a script, in ``examples/`` or in ``tutorials/programs/``, that runs on
real MPI ranks with :func:`~minidl.testing.run_mpi`, exactly as its first
line says a student would type it::

    mpiexec -n 2 python -m mpi4py examples/ddp_training.py

Each script is shown in full before it runs; every rank runs all of it. The
tutorial's own programs hand their results back to this page with
:func:`~minidl.testing.report`, which, run by hand, just prints them.

The course assignment that goes with this tutorial: :doc:`/assignments/data_parallel`.
"""

# %%
# The data, in shards
# -------------------
# :class:`~minidl.parallel.DistributedSampler` decides which samples each
# rank sees. Every rank draws the *same* permutation of the data set (from
# the seed and the epoch), and rank ``r`` of ``p`` takes positions ``r, r +
# p, r + 2p, ...`` of it. It needs no MPI when it is told the number of
# ranks and its rank, so here are all three shards of 10 samples for
# ``p = 3``, first without shuffling:
import inspect
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

import minidl
import minidl.functional as F
from minidl import models, optim
from minidl.data import BatchSampler, DataLoader, RandomSampler, TensorDataset, load_digits
from minidl.parallel import DistributedSampler, Reducer, parameters_hash
from minidl.testing import run_mpi

P, N = 3, 10
for rank in range(P):
    print(f"rank {rank}:",
          list(DistributedSampler(range(N), num_replicas=P, rank=rank, shuffle=False)))

# %%
# Ten samples do not split into three equal shards. Every rank must run the
# same number of steps (an all-reduce needs all of them), so the sampler pads
# the order with its own first samples, as PyTorch does: samples 0 and 1 are
# seen twice this epoch. ``drop_last=True`` drops the tail instead:
for rank in range(P):
    shard = DistributedSampler(range(N), num_replicas=P, rank=rank, shuffle=False, drop_last=True)
    print(f"rank {rank}:", list(shard))

# %%
# With shuffling (the default), each epoch has its own permutation, the same
# on every rank for a given seed and epoch. ``set_epoch`` moves to the next
# one; forgetting to call it would show the same order every epoch.
for epoch in (0, 1):
    shards = []
    for rank in range(P):
        sampler = DistributedSampler(range(N), num_replicas=P, rank=rank, seed=0)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
    print(f"epoch {epoch}:", "   ".join(f"rank {r}: {s}" for r, s in enumerate(shards)))

# %%
# Drawn with ranks as rows and samples as columns, each sample is taken by
# exactly one rank (the shards are disjoint and cover the data), except the
# padding, which puts a second mark in its column. The number in a cell is
# the sample's place in that rank's shard.


def draw_shards(ax, samplers, title):
    n = len(samplers[0].dataset)
    taken = np.zeros((len(samplers), n))
    for rank, sampler in enumerate(samplers):
        for place, index in enumerate(sampler):
            taken[rank, index] = rank + 1
            ax.text(index, rank, str(place), ha="center", va="center", color="white", fontsize=9)
    colours = ListedColormap(["0.93", "C0", "C1", "C2"][: len(samplers) + 1])
    ax.imshow(taken, cmap=colours, vmin=0, vmax=len(samplers), aspect="equal")
    ax.set_xticks(range(n))
    ax.set_yticks(range(len(samplers)), [f"rank {r}" for r in range(len(samplers))])
    ax.set_xticks(np.arange(-0.5, n), minor=True)
    ax.set_yticks(np.arange(-0.5, len(samplers)), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set(xlabel="sample index in the data set", title=title)


fig, axes = plt.subplots(3, 1, figsize=(7, 6))
for ax, (shuffle, epoch) in zip(axes, [(False, 0), (True, 0), (True, 1)]):
    samplers = []
    for rank in range(P):
        samplers.append(DistributedSampler(range(N), num_replicas=P, rank=rank, shuffle=shuffle,
                                           seed=0))
        samplers[-1].set_epoch(epoch)
    draw_shards(ax, samplers, "no shuffling" if not shuffle else f"shuffled, epoch {epoch}")
fig.suptitle(f"DistributedSampler: {N} samples over {P} ranks")
fig.tight_layout()

# %%
# Why taking every ``p``-th sample is the right cut: one process with
# :class:`~minidl.data.RandomSampler` and the same seed draws the same
# permutation, and cuts it into global batches of ``b``. The ranks cut their
# shards into batches of ``b / p``, and batch ``k`` of all ranks together
# holds exactly the samples of the single process's batch ``k``. So ``p``
# ranks train on the same global batches as one process, in the same order.
# :class:`~minidl.data.BatchSampler` shows the batches a DataLoader would
# draw, as index arrays. Checked on the digits, for ``b = 32`` and ``p = 4``:
train, test = load_digits()
b, p, epoch = 32, 4, 3
single = RandomSampler(train, seed=0)
single.set_epoch(epoch)
one_process = list(BatchSampler(single, b))
per_rank = []
for rank in range(p):
    sampler = DistributedSampler(train, num_replicas=p, rank=rank, seed=0)
    sampler.set_epoch(epoch)
    per_rank.append(list(BatchSampler(sampler, b // p)))
together = [np.concatenate(batches) for batches in zip(*per_rank)]
print(f"{len(train)} training digits, {len(one_process)} global batches of up to {b}")
print(f"batch 0 of one process, sorted: {np.sort(one_process[0])[:8].tolist()} ...")
print(f"batch 0 of the {p} ranks, sorted: {np.sort(together[0])[:8].tolist()} ...")
full = len(train) // b
same = all(set(together[k]) == set(one_process[k]) for k in range(full))
print(f"the {full} full batches identical:", same)
print(f"the last batch: one process {np.sort(one_process[-1]).tolist()}, "
      f"the ranks {np.sort(together[-1]).tolist()}; "
      f"the permutation starts {one_process[0][:2].tolist()}")

# %%
# Only the last, partial batch differs: 1442 samples leave 2 for it, and the
# ranks pad their shards to 361 samples each, so they see those 2 and the
# first 2 of the permutation again. Use ``drop_last=True`` in both samplers
# (or a global batch that divides the data set) when even that must match.
#
# One step by hand: ``allreduce_gradients``
# -----------------------------------------
# The first data-parallel step a student writes: forward and backward on this
# rank's shard, then :func:`~minidl.parallel.allreduce_gradients`, which
# all-reduces every parameter's ``.grad`` (one all-reduce per parameter, with
# minidl's ring algorithm) and divides by ``p``. The global batch is the first
# 8 training digits; each of 2 ranks takes 4 of them. Every rank seeds
# minidl's generator with the same seed, so the replicas start identical, and
# :func:`~minidl.parallel.parameters_hash` (a SHA-256 of every parameter's
# bytes) proves it. Each rank reports its local gradient and the averaged one.
PROGRAMS = Path(minidl.__file__).resolve().parents[1] / "tutorials" / "programs"
EXAMPLES = PROGRAMS.parents[1] / "examples"
print((PROGRAMS / "ddp_by_hand.py").read_text())

# %%
# Run on real ranks:
job = run_mpi(PROGRAMS / "ddp_by_hand.py", 2, timeout=60)
for rank, r in enumerate(job.results):
    print(f"rank {rank}: samples {r['shard'].tolist()}, loss {r['loss']:.4f}, "
          f"weights {r['hash'][:16]}...")

# %%
# The reference: the same model, seeded the same way, on all 8 digits in this
# one process. Its starting weights hash to the same value as the ranks'.
images, labels = train.arrays
minidl.manual_seed(0)
whole = models.mlp()
print("same starting weights as the ranks:", parameters_hash(whole) == job.results[0]["hash"])
F.cross_entropy(whole(minidl.tensor(images[:8])), labels[:8]).backward()
reference = {name: q.grad for name, q in whole.named_parameters()}

# %%
# The gradient of the last layer's bias (``5.bias``, one number per class),
# side by side. Each rank's local gradient is its own 4 digits' view; their
# mean, which is what ``allreduce_gradients`` left on *both* ranks, is the
# gradient of the whole batch of 8:
name = "5.bias"
local0, local1 = (r["local"][name] for r in job.results)
rows = {
    "rank 0, local": local0,
    "rank 1, local": local1,
    "rank 0, averaged": job.results[0]["averaged"][name],
    "rank 1, averaged": job.results[1]["averaged"][name],
    "one process, 8 digits": reference[name],
}
print(" " * 22 + "".join(f"{c:>8d}" for c in range(10)))
for label, values in rows.items():
    print(f"{label:22s}" + "".join(f"{v:8.4f}" for v in values))
for rank, r in enumerate(job.results):
    gap = max(np.abs(r["averaged"][k] - reference[k]).max() for k in reference)
    print(f"rank {rank}: largest difference from one process over all parameters: {gap:.1e}")

# %%
# The differences are float32 rounding: the ranks add the same numbers in a
# different order. The rule behind it: with a *mean* loss over ``b / p``
# samples on each rank, the mean of the ``p`` rank gradients is the gradient
# of the mean over all ``b``. With a *summed* loss one would sum instead of
# average (``average=False``).
#
# The same step with ``DistributedDataParallel``
# ----------------------------------------------
# ``allreduce_gradients`` runs one all-reduce per parameter, and only after
# backward has finished. :class:`~minidl.parallel.DistributedDataParallel`
# does better on both counts:
#
# - at construction it checks that every rank holds the same architecture and
#   broadcasts rank 0's parameters, so ranks may even start from different
#   seeds (as they do below);
# - every ``.grad`` becomes a *view* into one of a few flat buckets, filled
#   last layer first, so one all-reduce serves several parameters and nothing
#   is copied before sending;
# - a hook fires when a parameter's gradient is final; when a bucket is full
#   its all-reduce starts without blocking, later hooks move it along while
#   backward goes on, and ``loss.backward()`` returns with averaged gradients.
#
# A cap of 0.02 MiB cuts the MLP's gradients into four buckets.
print((PROGRAMS / "ddp_one_step.py").read_text())

# %%
# Run on real ranks:
job = run_mpi(PROGRAMS / "ddp_one_step.py", 2, timeout=60)
for rank, r in enumerate(job.results):
    print(f"rank {rank}: weights {r['before'][:16]}... before DDP, {r['after'][:16]}... after")
print(job.results[0]["repr"])

# %%
# The ``repr`` lists the bucket sizes, rounded to KiB. Exactly, and with the
# gradients each holds: the last layer's, and the bias of the layer before,
# fill bucket 0, which is therefore ready first in backward; every ``.grad``
# is a view of its bucket.
for index, nbytes, names in job.results[0]["buckets"]:
    print(f"bucket {index}: {nbytes:6d} bytes  {', '.join(names)}")
print("every .grad is a view into its bucket:", job.results[0]["views"])

# %%
# The gradients after ``backward`` equal those of one process on the whole
# batch, as before; rank 0's seed is 0, the one the reference used. The
# statistics count the all-reduces (one per bucket: four, where
# ``allreduce_gradients`` ran six) and the bytes this rank sent for them: the
# ring sends ``2 (p - 1) / p`` times the gradients' size, for ``p = 2``
# exactly the 68,904 bytes of the four buckets.
for rank, r in enumerate(job.results):
    gap = max(np.abs(r["grads"][k] - reference[k]).max() for k in reference)
    print(f"rank {rank}: largest difference from one process: {gap:.1e}")
stats = job.results[0]["stats"]
print(f"rank 0: {stats['allreduces']} all-reduces, {stats['bytes_sent']} bytes sent, "
      f"{stats['comm_seconds'] * 1e3:.2f} ms communicating")

# %%
# Inside: the reducer
# -------------------
# ``DistributedDataParallel`` is only the wrapper, as in PyTorch: it checks
# that every rank holds the same model and cuts the same buckets, broadcasts
# the weights, and offers ``no_sync`` and ``close``. The gradients are
# averaged by its :class:`~minidl.parallel.Reducer` (``ddp.reducer``). Here is
# that whole path, read from the source of this checkout: bucket, iallreduce,
# average. ``_grad_ready`` is the hook each parameter gets; it counts the
# gradient off in its bucket and queues the buckets that are full, in
# bucket order, so that every rank starts the same all-reduces in the same
# order. ``_progress`` keeps one all-reduce in flight: it moves it along
# (``request.test()`` never blocks), averages its bucket once it is done,
# and starts the next with :func:`~minidl.distributed.iallreduce`.
for method in (Reducer._grad_ready, Reducer._progress, Reducer._start, Reducer._average):
    print(inspect.getsource(method))

# %%
# ``self.observer`` is told what happens at these few named points and keeps
# the statistics above and the timeline below
# (:mod:`~minidl.parallel.observer`); the reducer itself only reduces.
# ``self.steps`` is the step check (:mod:`~minidl.parallel.step_check`): a
# rank that skipped a step would leave the others waiting forever, so before
# bucket 0 starts, the ranks compare their step counts, and raise if they
# differ. When backward has finished, the callback that the first hook
# queued reduces what is left. The last bucket holds the first layer's
# gradients, which backward computes last, so there is nothing to overlap
# it with: it is reduced blocking, after a barrier, and ``self.waits``
# (:class:`~minidl.parallel.comm.WaitPolicy`) decides how to wait: polling
# briefly and then giving the core away when ranks share cores.
print(inspect.getsource(Reducer._finish_pass))

# %%
# Equivalence, step after step
# ----------------------------
# One step is not training. The script below trains the MLP for 6 steps of
# SGD with momentum, on the digits in float64, with the job's own recipe:
# every rank draws the same permutation of the training set and takes its
# shard of each global batch of 24 (:func:`minidl.train.epoch_loader` does
# the same). After every step each rank records ``parameters_hash``, and at
# the end it reports its weights. It runs on 2 ranks and on 4 (this machine
# has 2 cores; 4 ranks share them, which changes the time, not the result).
print((PROGRAMS / "ddp_equivalence.py").read_text())

# %%
# The same 6 steps in this one process, with the whole batch of 24:
BATCH, STEPS = 24, 6
train64 = TensorDataset(images.astype(np.float64), labels)
minidl.manual_seed(0)
single_model = models.mlp(dtype=np.float64)
optimizer = optim.SGD(single_model.parameters(), lr=0.05, momentum=0.9)
sampler = RandomSampler(train64, seed=0)
sampler.set_epoch(1)
single_hashes = []
for step, (x, y) in enumerate(DataLoader(train64, batch_size=BATCH, sampler=sampler)):
    if step == STEPS:
        break
    optimizer.zero_grad()
    F.cross_entropy(single_model(x), y).backward()
    optimizer.step()
    single_hashes.append(parameters_hash(single_model))
single_weights = single_model.state_dict()

for ranks in (2, 4):
    job = run_mpi(PROGRAMS / "ddp_equivalence.py", ranks, timeout=60)
    print(f"p = {ranks}, parameters_hash after each step (first 10 hex digits):")
    for step in range(STEPS):
        line = "  ".join(r["hashes"][step][:10] for r in job.results)
        same = len({r["hashes"][step] for r in job.results}) == 1
        print(f"  step {step + 1}: {line}   {'all equal' if same else 'DIFFERENT'}")
    for rank, r in enumerate(job.results):
        diff = max(np.abs(r["weights"][k] - single_weights[k]).max() for k in single_weights)
        scale = max(np.abs(single_weights[k]).max() for k in single_weights)
        print(f"  rank {rank}: largest difference from one process {diff:.1e} "
              f"(weights up to {scale:.2f})")

# %%
# On every step all ranks hash to the same value: the replicas are
# bit-for-bit identical, because each applies the same averaged gradient. The
# one process's weights differ from theirs in the last bits (its hash differs
# too: ``single_hashes[-1]`` is another value), because a sum over 24 samples
# and a sum of ``p`` sums over ``24 / p`` samples round differently. In
# float64 the difference stays within a few ``1e-17``, far below the ``1e-10`` the
# tests demand.
print("one process, after the last step:", single_hashes[-1][:10])

# %%
# Your own training loop: ``examples/ddp_training.py``
# -----------------------------------------------------
# Everything above in one script to read top to bottom and run yourself: a
# data-parallel loop on the digits with an MLP, ``DistributedDataParallel``
# and ``DistributedSampler`` through a ``DataLoader``, the replicas seeded
# differently on purpose (DDP's broadcast makes them equal), and at the end
# one process that trains from the same first weights on the union of the
# ranks' batches, compared parameter by parameter:
print((EXAMPLES / "ddp_training.py").read_text())

# %%
# Run as its first line says, on 2 ranks:
print(run_mpi(EXAMPLES / "ddp_training.py", 2, timeout=120).stdout)

# %%
# Gradient accumulation: ``examples/ddp_no_sync.py``
# ---------------------------------------------------
# A batch too big for memory is cut into ``k`` micro-batches whose gradients
# add up in ``.grad`` before one optimizer step. Under DDP every backward
# would all-reduce, ``k`` times per step, though only the sum at the end
# matters: inside ``with ddp.no_sync():`` backward keeps its gradients local,
# and the first backward after the block all-reduces the sum. The script
# counts the all-reduces both ways and checks that both equal one process:
print((EXAMPLES / "ddp_no_sync.py").read_text())

# %%
print(run_mpi(EXAMPLES / "ddp_no_sync.py", 2, timeout=120).stdout)

# %%
# The timeline of one step
# ------------------------
# Where does the time go, and does communication really hide behind backward?
# A :class:`~minidl.parallel.timeline.Timeline` records named spans on each
# rank: the loop below wraps forward and backward in ``timeline.span``, and
# DDP, given the same timeline, adds each bucket's all-reduce and the time
# backward's end spends waiting for them; a :class:`~minidl.distributed.Trace` adds
# every message of every round. ``to_chrome`` gathers all ranks' spans into
# one Chrome trace file. The training job records exactly these spans:
# ``mpiexec -n 2 python -m mpi4py -m minidl.train --trace trace.json`` writes
# the same kind of file for 10 steps of its last epoch, and
# https://ui.perfetto.dev opens it.
#
# The script runs LeNet on 28x28 inputs (random images of MNIST's size, so
# that a step has enough work to see) with a global batch of 128 on 2 ranks,
# records 6 steps after 2 warm-up steps, and runs once with overlap and once
# without. A cap of 0.02 MiB cuts the gradients into five buckets.
print((PROGRAMS / "ddp_timeline.py").read_text())

# %%
# Run on real ranks:
traces = {}
with tempfile.TemporaryDirectory(prefix="minidl-tutorial-") as workdir:
    for mode in ("overlap", "no overlap"):
        path = Path(workdir) / f"{mode.replace(' ', '-')}.json"
        run_mpi(PROGRAMS / "ddp_timeline.py", 2, args=[path, mode.replace(" ", "-")], timeout=60)
        traces[mode] = [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
        print(f"{mode}: {len(traces[mode])} spans "
              f"from ranks {sorted({e['pid'] for e in traces[mode]})}")

# %%
# The file holds trace events in Chrome's format: one ``"X"`` (complete) event
# per span, with a start ``ts`` and a duration ``dur`` in microseconds, the
# rank as ``pid`` and the lane as ``tid``. Here is one all-reduce of rank 0
# and the messages inside it: with 2 ranks the ring is one reduce-scatter
# round (send half the bucket, receive the other half and reduce it in) and
# one all-gather round (swap the reduced halves).
events = traces["overlap"]
bucket = next(e for e in events if e["pid"] == 0 and e["name"] == "all-reduce bucket 1")
inside = [e for e in events if e["pid"] == 0 and e["cat"] in ("send", "recv", "reduce")
          and bucket["ts"] <= e["ts"] <= bucket["ts"] + bucket["dur"]]
for e in [bucket, *inside]:
    print(f"{e['cat']:>6s}  {e['name']:20s} ts {e['ts'] / 1e3:8.3f} ms  "
          f"dur {e['dur']:7.1f} us  {e['args']}")

# %%
# Now one step of each run, as a Gantt chart: for each rank a *main* lane
# (forward in blue, backward in orange, and in grey the end of backward
# waiting for all-reduces) and a *comm* lane with each bucket's all-reduce.
# The step drawn is the one of median length on rank 0. In the legend, each
# bucket lists its parameters: in this LeNet, layers 0 and 3 are the
# convolutions and 7, 9, 11 the linear layers, so buckets 0 to 3 hold the
# linear layers' gradients, which backward finishes first, and bucket 4 the
# convolutions', which come last and cost most.
MAIN_COLOURS = {"forward": "C0", "backward": "C1", "wait for all-reduces": "0.7"}


def steps_of(events, rank):
    """``(start, end)`` of each traced step of ``rank``, in microseconds: forward to next
    forward."""
    starts = sorted(e["ts"] for e in events if e["pid"] == rank and e["name"] == "forward")
    ends = starts[1:] + [max(e["ts"] + e["dur"] for e in events if e["pid"] == rank)]
    return list(zip(starts, ends))


def median_step(events):
    """Index of the step of median length on rank 0."""
    lengths = [end - start for start, end in steps_of(events, 0)]
    return int(np.argsort(lengths)[len(lengths) // 2])


def draw_step(ax, events, step, title, colours):
    """One step of every rank: a main and a comm lane per rank, time from the step's start in ms."""
    ranks = sorted({e["pid"] for e in events})
    windows = {rank: steps_of(events, rank)[step] for rank in ranks}
    t0 = min(start for start, _ in windows.values())
    lanes = [(rank, lane) for rank in ranks for lane in ("main", "comm")]
    for rank in ranks:
        start, end = windows[rank]
        for e in events:
            if e["pid"] != rank or e["cat"] not in ("main", "comm") or not start <= e["ts"] < end:
                continue
            row = lanes.index((rank, e["cat"]))
            if e["name"] == "wait for peers":  # the ranks lining up before an all-reduce
                colour, layer = "0.9", 1
            elif e["cat"] == "comm":
                colour, layer = colours[int(e["name"].split()[-1])], 1
            else:
                colour = MAIN_COLOURS[e["name"]]
                layer = 2 if e["name"] == "wait for all-reduces" else 1  # drawn over backward
            span = [((e["ts"] - t0) / 1e3, e["dur"] / 1e3)]
            ax.broken_barh(span, (row - 0.35, 0.7), facecolor=colour, edgecolor="black",
                           linewidth=0.4, zorder=layer)
    ax.set_yticks(range(len(lanes)), [f"rank {rank}, {lane}" for rank, lane in lanes])
    ax.set_ylim(len(lanes) - 0.4, -0.6)
    ax.set(xlabel="time since the step began (ms)", title=title)
    ax.grid(axis="x", alpha=0.3, zorder=0)


def bucket_legend(events):
    """Colours and legend entries of the buckets, from the parameters each all-reduce carried."""
    first = {}
    for e in events:
        if e["name"].startswith("all-reduce bucket") and e["name"] not in first:
            first[e["name"]] = e["args"]
    count = len(first)
    colours = [plt.cm.viridis(0.1 + 0.8 * k / max(count - 1, 1)) for k in range(count)]
    handles = [Patch(facecolor=MAIN_COLOURS[n], edgecolor="black", label=n) for n in MAIN_COLOURS]
    for k in range(count):
        args = first[f"all-reduce bucket {k}"]
        label = f"bucket {k}: {args['bytes'] / 1024:.1f} KiB ({', '.join(args['parameters'])})"
        handles.append(Patch(facecolor=colours[k], edgecolor="black", label=label))
    return colours, handles


colours, handles = bucket_legend(events)
fig, axes = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
for ax, mode in zip(axes, traces):
    step = median_step(traces[mode])
    draw_step(ax, traces[mode], step,
              f"{mode}: LeNet 28x28, batch 128 on 2 ranks, traced step {step + 1}\n"
              "(measured on the machine that built these docs)", colours)
axes[0].xaxis.set_tick_params(labelbottom=True)
fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0.11, 1, 1))

# %%
# With overlap, an all-reduce may start while backward is still computing on
# its rank: look for comm bars that begin under the orange, before the grey
# wait. Without overlap the comm lane stays empty until backward has computed
# every gradient, and the all-reduces run one after another inside the wait.
# One step can mislead, so here are all the traced steps: the median step,
# the all-reduce time per step, and the share of it that ran while backward
# was still computing:


def summary(events):
    """Per rank: median step (ms), all-reduce ms per step, share of it during backward's
    computation."""
    rows = []
    for rank in sorted({e["pid"] for e in events}):
        hidden = total = 0.0
        steps = steps_of(events, rank)
        for start, end in steps:
            mine = [e for e in events if e["pid"] == rank and start <= e["ts"] < end]
            backward = next(e for e in mine if e["name"] == "backward")
            waits = [e["ts"] for e in mine if e["name"] == "wait for all-reduces"]
            computed_until = waits[0] if waits else backward["ts"] + backward["dur"]
            for e in mine:
                if e["name"].startswith("all-reduce bucket"):
                    total += e["dur"]
                    overlap = min(e["ts"] + e["dur"], computed_until) - max(e["ts"], backward["ts"])
                    hidden += max(0.0, overlap)
        median = np.median([end - start for start, end in steps])
        rows.append((rank, median / 1e3, total / 1e3 / len(steps), hidden / max(total, 1e-9)))
    return rows


print(f"{'':10s} {'rank':>4s} {'median step ms':>15s} {'all-reduce ms/step':>19s} "
      f"{'during backward':>16s}")
for mode in traces:
    for rank, step_ms, comm_ms, hidden in summary(traces[mode]):
        print(f"{mode:10s} {rank:4d} {step_ms:15.1f} {comm_ms:19.1f} {hidden:16.0%}")

median = {mode: np.median([row[1] for row in summary(traces[mode])]) for mode in traces}
print(f"median step: {median['overlap']:.1f} ms with overlap, "
      f"{median['no overlap']:.1f} ms without")

# %%
# Overlap starts the communication early; between two ranks of one machine,
# it has little to hide. DDP keeps no communication thread (one would share its rank's core
# and Python's lock with backward): a full bucket's all-reduce is *started*
# with :func:`minidl.distributed.iallreduce`, which posts its first messages and
# returns, and every later gradient hook moves it along, one MPI ``Test``
# when nothing new has arrived. So a comm bar that begins under the orange
# is an all-reduce in flight: its messages travel while backward computes,
# and the bar ends at the first hook that finds them done, which is why
# these bars look long. What overlap cannot hide is the Python it takes to
# start and move each request along, some microseconds per bucket, here as
# much as the messages themselves, which between two ranks of one machine
# are copies through memory. An early all-reduce also waits for the slower
# rank, since it cannot finish before that rank sends its half. So whether
# overlap shortens the step here changes from run to run; the numbers above
# are the ones of the build of this page. Overlap pays when messages take
# long next to that overhead and backward is long enough to hide them: on a
# cluster's network, with a larger model. A timeline like this one
# is how one finds out which case one is in.
#
# Strong scaling
# --------------
# Last, the question data parallelism exists to answer: with the global batch
# fixed, how does the time per epoch fall as ranks are added? This is a small
# version of ``benchmarks/bench_scaling.py``: LeNet on 28x28 inputs (random
# images of MNIST's size: the 8x8 digits give too little work per step to
# spread), a global batch of 128, 1024 samples, so 8 steps per epoch. Each
# job runs one warm-up epoch and one timed one. The configurations take turns,
# three times over (so that a busy moment of the machine slows all of them
# alike), and each is drawn as the median of its three with their range.
# One process runs with one thread, then with both cores, the baseline a
# user would compare with, in the two ways that use them: two BLAS threads
# (the matrix products), or two OpenMP threads in minidl's kernels (im2col,
# pooling). Not both at once: two thread pools on the same
# two cores spin against each other. The ranks of ``p = 2`` and ``p = 4``
# have one thread each.
print((PROGRAMS / "ddp_scaling.py").read_text())

# %%
# Run on real ranks:
cores = os.cpu_count() or 1
print(f"this machine has {cores} cores")
# (label, ranks, BLAS threads, kernel threads)
configurations = [("p = 1, 1 thread", 1, 1, 1), ("p = 1, 2 BLAS threads", 1, 2, 1),
                  ("p = 1, 2 kernel threads", 1, 1, 2), ("p = 2", 2, 1, 1), ("p = 4", 4, 1, 1)]
single = [label for label, ranks, _, _ in configurations if ranks == 1]
REPEATS = 3
repeats = {label: [] for label, _, _, _ in configurations}
for _ in range(REPEATS):
    for label, ranks, blas, kernel in configurations:
        job = run_mpi(PROGRAMS / "ddp_scaling.py", ranks, args=[blas, kernel], timeout=120,
                      env={"OMP_NUM_THREADS": str(max(blas, kernel))})
        repeats[label].append(job.results[0])
epochs = {label: np.array([r["epoch"] for r in runs]) for label, runs in repeats.items()}
# Speedups within one pass (the rows of a pass ran seconds apart), then their median.
speedups = {label: epochs["p = 1, 1 thread"] / t for label, t in epochs.items()}
scaling = {label: {"epoch": float(np.median(t)),
                   "wait": float(np.median([r["wait"] for r in repeats[label]]))}
           for label, t in epochs.items()}
base = scaling["p = 1, 1 thread"]["epoch"]
best_single = min(scaling[label]["epoch"] for label in single)
print(f"measured on the machine that built these docs, medians of {REPEATS} interleaved passes")
print(f"{'configuration':24s} {'s/epoch':>8s} {'range':>13s} {'speedup':>8s} "
      f"{'vs best p = 1':>14s} {'waiting':>8s}")
for label, ranks, blas, kernel in configurations:
    r, t = scaling[label], epochs[label]
    note = "  (oversubscribed)" if ranks * max(blas, kernel) > cores else ""
    print(f"{label:24s} {r['epoch']:8.3f} {t.min():6.3f}-{t.max():<6.3f} "
          f"{np.median(speedups[label]):7.2f}x {best_single / r['epoch']:13.2f}x "
          f"{r['wait'] / r['epoch']:8.0%}{note}")

# %%
# ``speedup`` is over one process with one thread, ``vs best p = 1`` over the
# fastest of the single-process runs, and ``waiting`` the share of an
# epoch that backward's end spent blocked on all-reduces. Drawn: the time per
# epoch, and the speedup against the ideal ``p``, each the median of the
# passes with a bar from the lowest to the highest. The shaded region is
# beyond the machine's cores, where ranks share cores: ``p = 4`` has no
# more cores to compute on than ``p = 2``, so the difference between them is
# what oversubscription costs or, on a machine that other work shares, the
# larger share of it that four processes claim from the others.
ranks_axis = [1, 2, 4]
scaled = [speedups[label] for label in ("p = 1, 1 thread", "p = 2", "p = 4")]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
bar_labels = [label.replace(", ", "\n").replace(" threads", "\nthreads")
              + ("\n(oversubscribed)" if r * max(b, k) > cores else "")
              for label, r, b, k in configurations]
heights = np.array([scaling[label]["epoch"] for label, _, _, _ in configurations])
ax1.bar(bar_labels, heights,
        yerr=[heights - [epochs[label].min() for label, _, _, _ in configurations],
              [epochs[label].max() for label, _, _, _ in configurations] - heights],
        capsize=3,
        color=["C0" if r * max(b, k) <= cores else "C3" for _, r, b, k in configurations])
ax1.tick_params(axis="x", labelsize=7)
ax1.set(ylabel="time per epoch (s)", title="LeNet 28x28, global batch 128, 1024 samples")
middle = np.array([np.median(x) for x in scaled])
ax2.errorbar(ranks_axis, middle, yerr=[middle - [x.min() for x in scaled],
                                       [x.max() for x in scaled] - middle],
             fmt="o-", capsize=3, label="measured, one thread per rank")
ax2.plot(ranks_axis, ranks_axis, "--", color="0.5", label="ideal: p times faster")
ax2.axhline(base / best_single, color="0.4", linestyle=":",
            label="one process, best use of 2 cores")
if cores < 4:
    ax2.axvspan(cores + 0.05, 4.2, color="C3", alpha=0.08, label="more ranks than cores")
ax2.set(xlabel="ranks p", ylabel="speedup over p = 1, 1 thread", xticks=ranks_axis, xlim=(0.8, 4.2),
        ylim=(0, 4.2), title=f"strong scaling, {cores} cores")
ax2.legend(fontsize=8, loc="upper left")
fig.suptitle("measured on the machine that built these docs "
             f"(median of {REPEATS} interleaved passes, bars: range)", fontsize=10)
fig.tight_layout()

# %%
# These numbers depend on the machine that built this page, and on whatever
# else it was running at the time. On a 2-core machine, judge the speedup at
# ``p = 2``, where each rank has a core of its own: it cannot reach 2,
# because each rank also communicates and waits for the other, and because
# half a batch gives each kernel call less work. On a machine that other
# programs share, it can fall much lower: every all-reduce waits for the
# slowest rank, so a rank that loses its core for a moment holds up the
# other one at every step. ``p = 4`` runs two ranks per core.
#
# The honest baseline is one process using both cores, and the table
# compares with the fastest way found. Neither way halves the time: BLAS
# threads speed up the matrix products only, kernel threads im2col and
# pooling only, and the rest of a step (activations, the optimizer, Python)
# stays on one core. And on a virtual machine, two "cores" may be two
# hardware threads of one physical core of the host, which share its
# arithmetic units: then two ranks, or two threads, cannot get twice the
# arithmetic of one, however the work is split.
#
# To measure on your own machine, with overlap on and off and several bucket
# sizes, run ``python benchmarks/bench_scaling.py``; on a cluster, start the
# same scripts with ``mpiexec`` across nodes, with one rank per core or per
# socket.
