"""
Parameter servers and staleness
===============================

Data parallelism with an all-reduce keeps every rank in lockstep: nobody
starts step ``t + 1`` before everybody has finished step ``t``. Ben-Nun and
Hoefler's survey calls this the *consistency* axis, and it has two other
settings. A *parameter server* (Li et al., 2014) holds the parameters
centrally; *workers* pull them, compute a gradient on their own batch and
push it back. The server can wait for every worker's gradient before it
updates (*synchronous*), apply each gradient as it arrives (*asynchronous*,
Downpour in Dean et al., 2012), or let a worker run at most ``s`` steps ahead
of the slowest (*stale-synchronous parallel*, SSP, Ho et al., 2013). Without
any server at all, Hogwild! (Niu et al., 2011) lets workers on one machine
write their updates straight into shared memory, unlocked.

The price of not waiting is *staleness*: a gradient computed on parameters
that other updates have since changed. This tutorial traces one synchronous
step message by message, measures staleness under SSP and async, watches a
slow worker (a *straggler*) hold everyone back or not, shows Hogwild's race
on one shared array, and ends with the benchmark's accuracy and time table.

Every part that needs several ranks runs on real MPI ranks with
:func:`~minidl.testing.run_mpi`, as a student would type
``mpiexec -n 3 python -m mpi4py script.py``.

The course assignment that goes with this tutorial: :doc:`/assignments/parameter_servers`.
"""

# %%
# Servers, workers and a clock
# ----------------------------
# :class:`~minidl.parallel.ParameterServer` makes the first ``servers`` ranks
# servers, each holding a contiguous shard of the flattened parameters and
# that shard's optimizer state; the other ranks are workers. A worker's loop
# is ``pull()`` (fresh parameters into its model), forward and backward,
# ``push()`` (its gradient to the servers). Each server counts the updates it
# has applied: its *clock*. A pull returns the parameters and the clock they
# belong to; when the worker's gradient is applied later, the server records
# its staleness, the number of updates applied in between.
#
# ``examples/parameter_server.py`` checks the first claim of the mode
# ``"sync"``: one server and two workers, each on half of every batch, end
# where one process training on the whole batches ends. Then it runs
# ``"async"`` with worker 2 sleeping a little each step, and prints the order
# in which the pushes arrived and each worker's staleness:
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minidl
from minidl.testing import run_mpi

ROOT = Path(minidl.__file__).resolve().parents[1]
print((ROOT / "examples" / "parameter_server.py").read_text())

# %%
# Run as its first line says, on three ranks:
print(run_mpi(ROOT / "examples" / "parameter_server.py", 3, timeout=120).stdout)

# %%
# Tracing the benchmark's runs
# ----------------------------
# ``benchmarks/bench_consistency.py`` trains the digits MLP with one server
# and two workers in every mode, and also traces a few steps of some of them:
# each rank notes every pull (from asking to holding the parameters), its
# forward and backward, its sleep when it is made slow, every message of
# parameters or gradients it sends or receives, and on the server every
# update it applies. Here it runs once, small (2 epochs, 3 interleaved passes
# of every row), and writes everything to a JSON file that the rest of this
# page reads. Its rows: sync, SSP with ``s = 4``, async, DDP on the two
# workers' ranks, and Hogwild! on them; with every worker at full speed, and
# with worker 2 sleeping 4 ms every step.
BENCH = ROOT / "benchmarks" / "bench_consistency.py"
with tempfile.TemporaryDirectory() as folder:
    saved_path = Path(folder) / "consistency.json"
    bench = run_mpi(BENCH, 3, timeout=300, args=[
        "--epochs", 2, "--passes", 3, "--target", 0.8, "--straggler", 0.004,
        "--rows", "sync,ssp4,async,ddp,hogwild", "--conditions", "none,straggler",
        "--timeline-steps", 6, "--pushes", 30, "--floats", 65536, "--json", saved_path])
    saved = json.loads(saved_path.read_text())
timelines = {(t["mode"], t["staleness"], t["condition"]): t["ranks"] for t in saved["timelines"]}


def spans(events, kind):
    """The (start, length) in ms of one rank's events of one kind."""
    return [(a * 1e3, (b - a) * 1e3) for k, a, b, *_ in events if k == kind]


# %%
# A sync step, message by message
# -------------------------------
# Call the parameters after ``v`` updates *version* ``v``. Here is every
# event of the synchronous run without a straggler from the update that
# makes version 2 to the one that makes version 3, in the order they
# happened. Rank 0 is the server, ranks 1 and 2 the workers. The workers'
# pulls for their step 2 (counting from 0) wait at the server until version 2
# exists; then each worker computes its gradient on version 2 and pushes it,
# asks for the next parameters at once, and waits again; the server makes
# version 3 when the second of the two gradients is in: their average.
sync = timelines[("sync", 0, "none")]
STEP = 2


def story(ranks, step):
    """(time, order, what) of every event from update ``step - 1`` to update ``step``."""
    told = []
    for w in (1, 2):
        for kind, start, end, peer, clock in ranks[w]:
            if kind == "pull":
                told += [(start, 0, f"worker {w} asks for the parameters of its step {clock}"),
                         (end, 1, f"worker {w} holds version {clock}, after "
                                  f"{(end - start) * 1e3:.2f} ms")]
            elif kind == "compute":
                told.append((start, 2, f"worker {w} computes its gradient on version {clock}: "
                                       f"forward, backward ({(end - start) * 1e3:.2f} ms)"))
            elif kind == "send":
                told.append((start, 3, f"worker {w} pushes that gradient"))
    for kind, start, end, peer, clock in ranks[0]:
        if kind == "send":
            told.append((start, 4, f"server sends version {clock} to worker {peer}"))
        elif kind == "recv":
            told.append((start, 5, f"server receives worker {peer}'s gradient"))
        elif kind == "apply":
            told.append((start, 6, f"server averages the two gradients on version {clock} "
                                   f"into version {clock + 1} ({(end - start) * 1e3:.2f} ms)"))
    begin = min(a for k, a, _, _, c in ranks[0] if k == "apply" and c == step - 1)
    until = min(a for k, a, _, _, c in ranks[0] if k == "apply" and c == step)
    return [(t - begin, order, what) for t, order, what in sorted(told) if begin <= t <= until]


for t, _, what in story(sync, STEP):
    print(f"{t * 1e3:7.2f} ms  {what}")

# %%
# Drawn over three steps: each rank is a lane, time runs to the right,
# arrows are messages (parameters from the server down, gradients up). The
# grey stretches are a worker waiting for its pull: in sync mode, for the
# slower worker's gradient to be applied. A message also waits to be
# noticed: a server with nothing to do sleeps between two polls, a little
# longer each time up to a millisecond, so as not to take a core from the
# workers (this machine may have fewer cores than ranks), and sees a push or
# a pull at its next poll.
COLOURS = {"pull": "0.8", "compute": "C0", "straggle": "C1", "apply": "C2"}
NAMES = {"pull": "waiting for its pull", "compute": "forward and backward",
         "straggle": "asleep (made slow)", "apply": "server's update"}


def draw_lanes(ax, ranks, title, arrows=False, window=None):
    """One lane per rank: waits, computations, sleeps and updates; messages as arrows."""
    lane = {0: 0, 1: 1, 2: 2}  # the server on top, then the workers
    labelled = set()
    for r, events in enumerate(ranks):
        for kind, colour in COLOURS.items():
            boxes = spans(events, kind)
            if boxes:
                ax.broken_barh(boxes, (lane[r] - 0.35, 0.7), color=colour,
                               label=None if kind in labelled else NAMES[kind])
                labelled.add(kind)
    if arrows:
        for w in (1, 2):
            params = [a for k, a, _, peer, _ in ranks[0] if k == "send" and peer == w]
            held = [b for k, _, b, *_ in ranks[w] if k == "pull"]
            for sent, got in zip(params, held):
                ax.annotate("", (got * 1e3, lane[w] - 0.35), (sent * 1e3, lane[0] + 0.35),
                            arrowprops={"arrowstyle": "->", "color": "C3", "lw": 0.8})
            pushes = [a for k, a, *_ in ranks[w] if k == "send"]
            arrived = [a for k, a, _, peer, _ in ranks[0] if k == "recv" and peer == w]
            for sent, got in zip(pushes, arrived):
                ax.annotate("", (got * 1e3, lane[0] + 0.35), (sent * 1e3, lane[w] - 0.35),
                            arrowprops={"arrowstyle": "->", "color": "C4", "lw": 0.8})
    ax.set_yticks([0, 1, 2], ["server", "worker 1", "worker 2"])
    ax.set_ylim(2.6, -0.6)
    if window is not None:
        ax.set_xlim(*window)
    ax.set_title(title, loc="left", fontsize=10)


steps = [(a, b) for k, a, b, _, clock in sync[1] if k == "pull" and 1 <= clock <= 3]
applied = [b for k, _, b, _, clock in sync[0] if k == "apply" and clock == 3]
window = (steps[0][0] * 1e3 - 0.2, applied[0] * 1e3 + 0.2)
fig, ax = plt.subplots(figsize=(11, 3), constrained_layout=True)
draw_lanes(ax, sync, "Sync, steps 1 to 3: parameters down (red), gradients up (purple); "
           "measured on the machine that built these docs", arrows=True, window=window)
ax.set_xlabel("ms since the start of the run")
ax.legend(loc="upper right", fontsize=8, ncols=4)
plt.show()

# %%
# A straggler: sync waits, async races ahead, SSP lets it run s steps ahead
# -------------------------------------------------------------------------
# Now worker 2 sleeps 4 ms in every step (orange), a slow machine. In sync
# mode worker 1 waits for it at every pull: both advance at the straggler's
# pace. In async mode nobody waits for anybody: worker 1 goes through its
# steps as fast as its own pulls are answered, and the server applies each
# gradient on arrival. SSP with ``s = 1`` lets worker 1 run one step ahead,
# and no further: it waits at the pull of the step after that, and from then
# on runs at the straggler's pace, one step ahead. The same six steps each,
# on one time axis:


def draw_runs(runs, height):
    """One panel per ``(key of timelines, title)``, stacked on one time axis."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, height), sharex=True,
                             constrained_layout=True)
    for ax, (key, title) in zip(axes, runs):
        draw_lanes(ax, timelines[key], title)
    axes[0].legend(loc="upper right", fontsize=8, ncols=4)
    axes[-1].set_xlabel("ms since the start of the run (measured on the machine that built "
                        "these docs)")
    plt.show()


draw_runs([(("sync", 0, "straggler"), "sync: worker 1 waits for worker 2 at every pull"),
           (("ssp", 1, "straggler"), "SSP, s = 1: worker 1 may be one step ahead"),
           (("async", 0, "straggler"), "async: worker 1 never waits for worker 2")], 6.5)

# %%
# A persistent straggler leaves SSP little to absorb: after its first ``s``
# steps the fast worker waits as in sync. SSP pays off when slowness comes
# and goes. Here every worker sleeps 4 ms on a random half of its steps
# (the same draws in both runs): sync waits whenever either worker sleeps,
# SSP with ``s = 4`` lets the other run on and catch up later.
draw_runs([(("sync", 0, "jitter"), "sync, both workers slow now and then"),
           (("ssp", 4, "jitter"), "SSP, s = 4, the same sleeps")], 4.5)

# %%
# Staleness, counted by the server
# --------------------------------
# Each server keeps a histogram of the staleness of the gradients it applied,
# per worker (:attr:`PSStats.staleness_by_worker
# <minidl.parallel.parameter_server.PSStats>`). The benchmark sums them over
# its passes. Two things to read in it:
#
# - **SSP applies whole steps.** A server applies step ``t`` only once every
#   worker has pushed its gradient of step ``t`` (the per-clock aggregate;
#   with ``s = 0`` SSP is sync, bit for bit). A worker ahead of the others
#   reads parameters missing the steps still incomplete, up to ``s`` of
#   them, so its gradients are the stale ones. The straggler is never ahead:
#   when it pulls, every earlier step is complete, and its staleness is 0.
# - **Async is the other way round.** The server applies every push at once,
#   so between a worker's pull and its push it applies every push the
#   others made meanwhile. The fast worker sees few of those; the
#   straggler's long steps let the fast worker push many times: the
#   straggler's gradients are the stalest. Each worker here makes the same
#   number of steps, so the fast one finishes first; after that the
#   straggler runs alone, and its gradients are fresh again (staleness 0).
#
# The two clocks also differ: an async server's clock counts pushes (each
# applied as ``1 / W`` of a step for ``W`` workers), SSP's counts whole steps;
# the same staleness is twice as many steps in SSP as in async here.
fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharey=True, constrained_layout=True)
for row, (mode, s) in enumerate([("ssp", 4), ("async", 0)]):
    for col, condition in enumerate(["none", "straggler"]):
        ax = axes[row, col]
        entry = next(t for t in saved["training"] if (t["mode"], t["staleness"],
                                                      t["condition"]) == (mode, s, condition))
        for w, offset in (("1", -0.2), ("2", 0.2)):
            counts: dict[int, int] = {}
            for run in entry["runs"]:
                for age, n in run["by_worker"][w].items():
                    counts[int(age)] = counts.get(int(age), 0) + n
            ages = np.arange(max(counts) + 1)
            name = "worker 2 (the straggler)" if w == "2" and condition == "straggler" \
                else f"worker {w}"
            ax.bar(ages + offset, [counts.get(a, 0) for a in ages], width=0.4, label=name)
        ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"{'SSP, s = 4' if mode == 'ssp' else 'async'}, "
                     f"{'a straggler' if condition == 'straggler' else 'no straggler'}",
                     loc="left", fontsize=10)
        ax.set_xlabel(f"staleness ({'steps' if mode == 'ssp' else 'pushes'} applied between "
                      "pull and apply)")
        ax.legend(fontsize=8)
    axes[row, 0].set_ylabel("gradients applied (log)")
fig.suptitle("Staleness of the applied gradients, measured on the machine that built these "
             "docs", x=0.01, ha="left")
plt.show()

# %%
# Hogwild!: no server, one shared array
# -------------------------------------
# On one machine, workers need no server: :class:`~minidl.parallel.Hogwild`
# puts the parameters in one MPI-3 shared-memory window, and every rank's
# optimizer writes its updates straight into it, without messages and
# without a lock. An update ``p -= lr * g`` reads each element and writes it
# back; if another rank writes the same element in between, one of the two
# updates is lost. ``examples/hogwild.py`` shows it on a single shared
# counter, then trains the digits MLP that way:
print((ROOT / "examples" / "hogwild.py").read_text())
print(run_mpi(ROOT / "examples" / "hogwild.py", 2, timeout=120).stdout)

# %%
# The same race on a shared array of 1024 numbers: two ranks each add 1 to
# every element 5000 times, through Hogwild's SGD step (a gradient of -1, a
# learning rate of 1), once racing and once under the window's lock. Every
# element should end at 10000; the picture shows how many additions each
# element lost. How many, if any, depends on how often both ranks wrote the
# same stretch of memory at the same instant: the lock loses none, ever.
RACE = """
import numpy as np
from minidl import nn, optim
from minidl.parallel import Hogwild
from minidl.testing import report

ends = {}
for lock in (False, True):
    layer = nn.Linear(64, 16, bias=False)
    layer.weight.data[...] = 0                  # rank 0's zeros go into the shared window
    hogwild = Hogwild(layer, lock=lock)
    optimizer = optim.SGD(layer.parameters(), lr=1.0)
    layer.weight.grad = -np.ones_like(layer.weight.data)   # each step adds 1 everywhere
    for _ in range(5000):
        hogwild.step(optimizer)
    hogwild.close()                             # waits for the other rank, copies out
    ends[lock] = layer.weight.data.copy()
report(ends)
"""
ends = run_mpi(RACE, 2, timeout=120).results[0]
lost = {lock: 2 * 5000 - ends[lock] for lock in (False, True)}
fig, axes = plt.subplots(1, 2, figsize=(11, 2.6), constrained_layout=True)
top = max(float(lost[False].max()), 1.0)
for ax, lock in zip(axes, (False, True)):
    image = ax.imshow(lost[lock], vmin=0, vmax=top, cmap="magma_r", aspect="auto")
    ax.set_title(f"{'under the lock' if lock else 'racing (Hogwild!)'}: "
                 f"{int(lost[lock].sum())} of {2 * 5000 * lost[lock].size} additions lost",
                 loc="left", fontsize=10)
    ax.set_xlabel("element (column)")
    ax.set_ylabel("row")
fig.colorbar(image, ax=axes, label="additions lost")
fig.suptitle("One shared 16 x 64 array, two ranks; measured on the machine that built these "
             "docs", x=0.01, ha="left")
plt.show()

# %%
# SGD shrugs such losses off: a lost update is a gradient step not taken,
# and the next one comes along. Where updates are sparse (each touching a
# few of many parameters), collisions are rare, which is Hogwild's argument.

# %%
# Accuracy and time, side by side
# -------------------------------
# The benchmark's table, from the run above: for each row, the time until a
# worker first held parameters with 0.8 test accuracy, how many of the
# passes got there, the final accuracy, the run's wall time and the
# workers' share of it spent waiting. Sync and DDP compute the same updates
# from the same batches, so they end at the same accuracy; they differ in
# how the gradients travel (through a server, or by an all-reduce between
# the workers). Hogwild! sends no messages at all: its workers only compute
# and write. The staleness histograms follow, then the traced timelines
# and the capacity of one server: pushes per second as workers are added,
# and the share of its time the server was busy. A server busy nearly all
# the time is the bottleneck, and more workers can only queue up behind it
# (on a machine with few cores, the workers and servers also take turns on
# the cores: the first line says how many there were). This is a small run;
# the benchmark's own defaults train longer, repeat more and add SSP with
# ``s = 1``, Hogwild under its lock and a condition with random slowdowns
# of every worker.
print(bench.stdout)

# %%
# The times to 0.8 accuracy of the table, drawn: the median over the passes,
# the bar from the fastest to the slowest pass. A row that did not reach it
# in some pass draws the passes that did, and says how many.
fig, ax = plt.subplots(figsize=(11, 3.5), constrained_layout=True)
conditions = ["none", "straggler"]
rows = [t for t in saved["training"] if t["condition"] == "none"]
for c, condition in enumerate(conditions):
    for i, row in enumerate(rows):
        entry = next(t for t in saved["training"] if (t["mode"], t["staleness"]) ==
                     (row["mode"], row["staleness"]) and t["condition"] == condition)
        reach = [r["reach"] for r in entry["runs"] if r["reach"] is not None]
        x = i + (c - 0.5) * 0.38
        if reach:
            ax.bar(x, np.median(reach), width=0.36, color=f"C{c}",
                   yerr=[[np.median(reach) - min(reach)], [max(reach) - np.median(reach)]],
                   capsize=3, label=f"slowdown: {condition}" if i == 0 else None)
        ax.text(x, 0, f"{len(reach)}/{len(entry['runs'])}", ha="center", va="bottom",
                fontsize=7)
names = {"sync": "sync PS", "async": "async PS", "ddp": "DDP", "hogwild": "Hogwild!"}
ax.set_xticks(range(len(rows)),
              [names.get(r["mode"], f"SSP s={r['staleness']}") for r in rows])
ax.set_ylabel("seconds to 0.8 test accuracy")
ax.set_title("Time to accuracy, median and range of 3 interleaved passes (passes that reached "
             "it, at the foot); measured on the machine that built these docs",
             loc="left", fontsize=10)
ax.legend(fontsize=8)
plt.show()

# %%
# The training job does all of this with flags: ``mpiexec -n 3 python -m
# mpi4py -m minidl.train --model mlp --parallel ps --ps-mode ssp --staleness 2
# --straggler 2:0.005`` prints the epochs, then the staleness of every applied
# gradient and each rank's pushes, pulls and waiting; ``--parallel hogwild``
# (with ``--lock`` to serialise the updates) trains on shared memory.
