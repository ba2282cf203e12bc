"""
Pipelines and tensor parallelism, step by step
==============================================

Data parallelism copies the whole model onto every rank. When the model
does not fit, or one rank's share of the batch gets too small, it must be
cut instead. Ben-Nun and Hoefler's survey names the two cuts: *by layer*
(a pipeline: rank ``s`` holds consecutive layers, and micro-batches flow
through the ranks like an assembly line) and *by model*, within a layer
(tensor parallelism: each rank holds a slice of every weight matrix). Real
training combines them with data parallelism in a grid.

This tutorial follows a pipeline from its schedule, which is data you can
print, simulate and draw before anything runs, to real ranks; then a layer
split Megatron-style; then a grid of four ranks. Every claim is checked
against one process: the scripts in ``examples/`` compare their weights with
one process trained on the same batches, and exit with an error if they
drift. Run each yourself with the command on its first line.

The course assignment that goes with this tutorial: :doc:`/assignments/pipelines`.
"""

# %%
# A schedule is a list of actions
# -------------------------------
# With ``p`` stages and ``m`` micro-batches, stage ``s`` runs the forward
# of a micro-batch once stage ``s - 1`` has sent its activations, and its
# backward once stage ``s + 1`` has sent their gradient back. A *schedule*
# decides the order of each stage's forwards and backwards; the messages
# follow. Here is what stage 0 of 2 does in one step of 1F1B (PipeDream-Flush)
# with 4 micro-batches: one warm-up forward, then one forward and one
# backward in turn, then the backwards left, then the optimizer step.
from pathlib import Path

import matplotlib.pyplot as plt

import minidl
from minidl.parallel import pipeline_schedule, simulate_pipeline
from minidl.testing import run_mpi
from minidl.viz import draw_pipeline

print(pipeline_schedule("1f1b", 2, 4, stage=0))

# %%
# Stage 1, the last, computes the loss: it never waits for a gradient, and it
# runs each micro-batch's backward right after its forward.
print(pipeline_schedule("1f1b", 2, 4, stage=1))

# %%
# Simulated and drawn
# -------------------
# :func:`~minidl.parallel.simulate_pipeline` runs every stage's list against
# the others in one process: a receive waits until its message is sent, a
# forward takes 1 unit of time and a backward 2. It would name the stages of a
# schedule that deadlocks; these three do not. The white gaps are the
# *bubble*: GPipe runs every forward, then every backward; 1F1B interleaves
# them and ends at the same time; the interleaved schedule gives each stage
# two chunks of the model, so micro-batches go round the stages twice in
# smaller pieces, and the gaps shrink.
fig, axes = plt.subplots(3, 1, figsize=(11, 6.5), constrained_layout=True)
draw_pipeline("gpipe", 4, 8, ax=axes[0])
draw_pipeline("1f1b", 4, 8, ax=axes[1])
draw_pipeline("interleaved", 4, 8, chunks=2, ax=axes[2])
plt.show()

# %%
# The bubble, by the formula and by simulation
# --------------------------------------------
# With forward and backward equally long, GPipe and 1F1B idle a share
# ``(p - 1) / (m + p - 1)`` of the stages' time: the ramp up and the ramp
# down, ``p - 1`` slots each, over ``m + p - 1`` slots per stage. More
# micro-batches shrink it; the simulation agrees with the formula exactly
# (a test checks it for every ``p`` up to 8 and ``m`` up to 16).
micro_batches = [1, 2, 4, 8, 16, 32]
for p in (2, 4, 8):
    formula = [(p - 1) / (m + p - 1) for m in micro_batches]
    simulated = [simulate_pipeline("1f1b", p, m, forward=1, backward=1).bubble
                 for m in micro_batches]
    assert all(abs(a - b) < 1e-12 for a, b in zip(formula, simulated))
    interleaved = [simulate_pipeline("interleaved", p, m, forward=1, backward=1,
                                     chunks=2).bubble if m % p == 0 else None
                   for m in micro_batches]
    line, = plt.plot(micro_batches, formula, marker="o", label=f"p={p}: formula = simulated")
    plt.plot([m for m, b in zip(micro_batches, interleaved) if b is not None],
             [b for b in interleaved if b is not None], linestyle="--", marker="x",
             color=line.get_color(), label=f"p={p}: interleaved, 2 chunks (simulated)")
plt.xscale("log", base=2)
plt.xlabel("micro-batches per step")
plt.ylabel("bubble (idle share of the stages' time)")
plt.title("Bubble of GPipe and 1F1B (forward = backward)", loc="left")
plt.legend(fontsize=8)
plt.show()

# %%
# Why 1F1B holds fewer activations
# --------------------------------
# A stage must keep a micro-batch's activations from its forward until its
# backward. GPipe runs all ``m`` forwards first, so every stage holds all
# ``m`` at the turn. 1F1B starts each backward as soon as it can: stage ``s``
# never holds more than ``p - s``, however large ``m`` is. Same bubble, a
# fraction of the memory: that is why 1F1B replaced GPipe.
for m in (4, 8, 16):
    gpipe = simulate_pipeline("gpipe", 4, m).peak_in_flight
    one_f_one_b = simulate_pipeline("1f1b", 4, m).peak_in_flight
    print(f"m={m:2d}: micro-batches held per stage: gpipe {gpipe}, 1f1b {one_f_one_b}")

# %%
# On real ranks
# -------------
# :class:`~minidl.parallel.Pipeline` takes an ``nn.Sequential`` and keeps this
# rank's layers, under their names in the whole model. ``pipe.step(x, y,
# loss_fn)`` performs this stage's actions of the schedule, nothing else.
# Each micro-batch's mean loss is weighed by its share of the batch (``n_i /
# N``) before its backward, so the gradients summed over the micro-batches
# are one process's gradient of the batch's mean loss, even for micro-batches
# of different sizes. ``examples/pipeline.py`` prints its schedule, trains
# for five steps, and compares each stage's weights with one process:
EXAMPLES = Path(minidl.__file__).resolve().parents[1] / "examples"
print((EXAMPLES / "pipeline.py").read_text())

# %%
# Run as its first line says, on two ranks:
print(run_mpi(EXAMPLES / "pipeline.py", 2, timeout=120).stdout)

# %%
# Measured: the bubble on this machine
# ------------------------------------
# ``benchmarks/bench_pipeline.py`` times GPipe and 1F1B on two ranks and
# measures each stage's waiting (in receives, and for its sends to be
# taken) as a share of the step. Beside it are the simulation, fed with the
# forward and backward times it measured, and the formula. These numbers
# were measured on the machine that built these docs, a small run: the
# measured bubble also holds what the model leaves out (message latency,
# per-micro-batch overheads, and any other work on the machine), so it
# need not follow the formula closely.
BENCH = EXAMPLES.parent / "benchmarks" / "bench_pipeline.py"
job = run_mpi(BENCH, 2, args=["--width", "256", "--layers", "8", "--batch", "128",
                              "--steps", "2", "--passes", "3"], timeout=300)
print(job.stdout)
rows = [line.split() for line in job.stdout.splitlines()
        if line.split() and line.split()[0] in ("gpipe", "1f1b")]
for name, marker in (("gpipe", "o"), ("1f1b", "s")):
    ms = [int(r[1]) for r in rows if r[0] == name]
    measured = [float(r[3].rstrip("%")) / 100 for r in rows if r[0] == name]
    simulated = [float(r[4].rstrip("%")) / 100 for r in rows if r[0] == name]
    plt.plot(ms, measured, marker=marker, label=f"{name}: measured")
    plt.plot(ms, simulated, marker=marker, linestyle=":", label=f"{name}: simulated")
ms = sorted({int(r[1]) for r in rows})
plt.plot(ms, [1 / (m + 1) for m in ms], color="black", linestyle="--", label="formula, p=2")
plt.xscale("log", base=2)
plt.xlabel("micro-batches per step")
plt.ylabel("bubble")
plt.title("Bubble on 2 ranks, measured on the machine that built these docs", loc="left")
plt.legend(fontsize=8)
plt.show()

# %%
# Tensor parallelism: the operators f and g
# -----------------------------------------
# A linear layer ``Y = X W^T`` can be split by its output features (rank
# ``r`` holds rows ``r`` of ``W`` and computes its slice of ``Y`` from the
# whole ``X``: :class:`~minidl.parallel.ColumnParallelLinear`) or by its
# input features (rank ``r`` holds columns ``r`` and computes ``X_r W_r^T``;
# the sum over ranks is ``Y``: :class:`~minidl.parallel.RowParallelLinear`).
# Megatron-LM pairs them in an MLP block: the column layer's output stays
# sliced through the ReLU (it acts on each feature alone) and feeds the row
# layer. Two conjugate operators carry the gradients: ``f`` before the
# block is the identity forward and an all-reduce backward (every rank used
# the whole ``X``, so its gradient is the sum of theirs); ``g`` after it is
# an all-reduce forward (summing the partial products) and the identity
# backward. One all-reduce each way per block, with minidl's own
# :func:`~minidl.distributed.allreduce`:
print((EXAMPLES / "tensor_parallel.py").read_text())
print(run_mpi(EXAMPLES / "tensor_parallel.py", 2, timeout=120).stdout)

# %%
# A grid of four ranks
# --------------------
# :class:`~minidl.parallel.ProcessGrid` splits the ranks into
# data-parallel replicas, pipeline stages and tensor-parallel groups
# (tensor parallelism fastest: its ranks talk twice per layer, replicas once
# per step). Here, two replicas of a two-stage pipeline: each replica trains
# on half of every batch, and each stage averages its gradients with its
# twin once per step, after the last micro-batch's backward, not once per
# micro-batch. The result is again one process's:
print((EXAMPLES / "hybrid_grid.py").read_text())
print(run_mpi(EXAMPLES / "hybrid_grid.py", 4, timeout=120).stdout)

# %%
# The training job does the same with flags: ``mpiexec -n 4 python -m mpi4py
# -m minidl.train --parallel pipeline --pipeline-schedule 1f1b
# --micro-batches 4 --dp 2`` (add ``--tp 2`` for tensor-parallel stages,
# ``--trace FILE`` for a Chrome trace of every action on every rank).
