"""
Collectives, step by step
=========================

Data-parallel training ends every step with an *allreduce*: each rank holds
its own gradients, and afterwards every rank holds their sum. minidl writes
each allreduce algorithm once, as a *schedule* that says, round by round,
what one rank sends to whom and what it receives. This tutorial prints the
schedule of the ring allreduce, draws it, runs it on 4 and on 64 simulated
ranks in this one process, and prices the algorithms with the
alpha-beta-gamma cost model. Then it reads the short path from
``allreduce`` to MPI's ``Isend`` (the reference executor,
``minidl/distributed/run.py``), runs ``examples/ring_allreduce.py`` on four
real MPI ranks, and puts the cost model against the clock with
``examples/cost_model.py``, including where and why the model is off. It
ends with non-blocking collectives, the check that the ranks agree, and
scatter, gather and alltoall. The next tutorial writes a schedule of its
own.

The course assignments that go with this tutorial: :doc:`/assignments/collectives`
and :doc:`/assignments/performance`.
"""

# %%
# The ring, as a student reads it
# -------------------------------
# The ring cuts the buffer into ``p`` chunks. In each of ``p - 1`` rounds every
# rank sends one chunk to its right neighbour and reduces the chunk arriving
# from its left into its own copy (*reduce-scatter*); after that each rank
# owns one fully reduced chunk, and ``p - 1`` more rounds pass the finished
# chunks around the ring (*allgather*). :func:`~minidl.distributed.schedule` shows
# one rank's rounds as plain data, here rank 0 of 4 on a buffer of 8 elements:
import re
import time

import matplotlib.pyplot as plt
import numpy as np

from minidl.distributed import ALGORITHMS, Calibration, calibration, cost, schedule, simulate
from minidl.testing import run_mpi
from minidl.viz import draw_schedule

ring = schedule("ring", 4, 0, 8)
print(ring)

# %%
# Each round is a :class:`~minidl.distributed.Round` of :class:`~minidl.distributed.Send`
# and :class:`~minidl.distributed.Recv` records: a peer, the chunks and their element
# range, and for a receive whether it is reduced in or copied.
first = ring.rounds[0]
print(first.sends[0])
print(first.recvs[0], "| reduce:", first.recvs[0].reduce)

# %%
# Drawn for all ranks at once, ranks as rows and rounds as columns, the
# reduce-scatter is a staircase of solid arrows (reduced in) and the
# allgather the same staircase dashed (copied in). The numbers are chunks.
draw_schedule("ring", 4)
plt.tight_layout()

# %%
# Recursive doubling is a butterfly instead: in round ``k`` each rank swaps
# its whole buffer with ``rank XOR 2^k``, so ``lg p`` rounds suffice, but each
# moves everything.
draw_schedule("recursive_doubling", 8)
plt.tight_layout()

# %%
# Running a schedule without MPI
# ------------------------------
# :func:`~minidl.distributed.simulate` plays every rank of a schedule in this one
# process, over one NumPy buffer per rank, and checks that every send has a
# matching receive. Each rank's input depends on the rank and the index, so a
# chunk delivered to the wrong place would show.
p, n = 4, 10
inputs = [np.arange(n, dtype=np.float64) + 100 * rank for rank in range(p)]
outputs, trace = simulate("ring", inputs)
print("rank 0 after:", outputs[0])
print("expected:    ", np.sum(inputs, axis=0))
print("every rank agrees:", all(np.array_equal(out, outputs[0]) for out in outputs))

# %%
# The simulator also returns a :class:`~minidl.distributed.Trace`: one event per
# message sent, received and reduced, counted per rank. Its clock counts
# rounds. ``trace.to_chrome("ring.json")`` would write it for Perfetto.
# (A trace of a real ``mpiexec`` run holds one rank's events, and its
# ``summary()`` and ``to_chrome()`` show those alone. ``trace.gather()``
# merges every rank's onto rank 0: it is a collective, so call it on every
# rank, then summarise the merged trace where it is not ``None``.)
trace.summary()

# %%
# 64 ranks are as easy, and quick. The ring needs ``2 (p - 1) = 126`` rounds,
# and each rank sends ``2 (p - 1) / p`` of the buffer, whatever ``p`` is:
# that is why it is called bandwidth-optimal.
p, n = 64, 64 * 1000
inputs = [np.random.default_rng(rank).integers(-100, 100, n) for rank in range(p)]
started = time.perf_counter()
outputs, trace = simulate("ring", inputs)
seconds = time.perf_counter() - started
stats = trace.stats()[0]
print(f"simulated {p} ranks in {seconds:.2f} s")
print("exact on every rank:", all(np.array_equal(out, np.sum(inputs, axis=0)) for out in outputs))
print(f"rank 0 sent {stats.messages_sent} messages, {stats.elements_sent / n:.3f} n elements")
print(f"2 (p - 1) / p = {2 * (p - 1) / p:.3f}")

# %%
# What each algorithm costs, on paper
# -----------------------------------
# In the alpha-beta-gamma model a round costs ``alpha`` per message (latency),
# ``beta`` per byte on the wire and ``gamma`` per byte reduced.
# :func:`~minidl.distributed.cost` walks the schedules of all ranks and adds up, round
# by round, what the busiest rank does. For the ring on ``p`` ranks the
# result is the textbook ``2 (p - 1) alpha + 2 (p - 1) / p n beta + (p - 1) /
# p n gamma``, and recursive doubling costs ``lg p (alpha + n beta + n
# gamma)``:
alpha, beta, gamma = 5e-6, 2e-10, 1e-10
for algorithm in ("ring", "recursive_doubling"):
    print(algorithm, cost(algorithm, 64, 1 << 20, alpha, beta, gamma))

# %%
# Priced over buffer sizes, the latency-bound algorithms (few rounds) win for
# short buffers and the bandwidth-optimal ones (ring, Rabenseifner) for long
# ones. ``algorithm="auto"`` picks the cheapest this way, with numbers
# measured on the machine (see below).
model = Calibration(alpha, beta, gamma)
sizes = [1 << k for k in range(8, 27, 2)]
fig, ax = plt.subplots(figsize=(7, 4.5))
for algorithm in ALGORITHMS["allreduce"]:
    ax.loglog(sizes, [model.predict(algorithm, 64, s) for s in sizes], "o-", label=algorithm)
ax.set(xlabel="buffer size (bytes)", ylabel="predicted time (s)")
ax.set_title(f"allreduce on 64 ranks, predicted by the model\n"
             f"alpha={alpha:g} s, beta={beta:g} s/B, gamma={gamma:g} s/B")
ax.legend()
fig.tight_layout()
print("auto picks, by size:", {s: model.choose(64, s) for s in (1 << 10, 1 << 16, 1 << 24)})

# %%
# From ``allreduce`` to ``comm.Isend``: two files
# -----------------------------------------------
# On real MPI ranks, :func:`minidl.distributed.allreduce` runs the same
# schedules, and the path from the call to the first MPI message is short
# enough to read in full. It crosses two files. The first is
# ``minidl/distributed/collectives.py``, where every collective takes the
# same four steps. This is ``allreduce`` itself, as it is in the source
# (read with :func:`inspect.getsource`, so it cannot drift; only its long
# docstring is cut to its first line):
import ast
import inspect
import textwrap

from minidl.distributed import allreduce, backend, run, use


def without_docstring(function):
    """The source of ``function``, with its docstring cut down to its first line."""
    source = textwrap.dedent(inspect.getsource(function))
    definition = ast.parse(source).body[0]
    docstring = definition.body[0]
    lines = source.splitlines()
    summary = ast.get_docstring(definition).splitlines()[0]
    indent = " " * docstring.col_offset
    kept = lines[: docstring.lineno - 1] + [f'{indent}"""{summary} ..."""']
    return "\n".join(kept + lines[docstring.end_lineno :])


print(without_docstring(allreduce))

# %%
# The four steps are:
#
# 1. ``_validate`` checks what this rank passed (buffer, dtype, op,
#    algorithm, communicator) and returns a ``Call`` that holds it, checked;
# 2. ``_agree`` makes sure every rank made the same call (see *When the
#    ranks disagree* below), so that a mistake raises instead of hanging;
# 3. ``_schedule`` asks for this rank's rounds: the very ``Round`` records
#    that :func:`~minidl.distributed.schedule` printed at the top;
# 4. ``_run`` performs them on the buffer, in place.
#
# Steps 1, 3 and 4 are done by the *executor* that is active, and step 2
# uses its way of taking a maximum over the ranks. There are two executors,
# as the kernels have two backends: the *reference* executor, short enough
# to read in full and the one to read first, and a *fast* one, the default,
# which performs the same rounds to the same bits with tuning a student can
# come back to later (its docstrings, in ``minidl/distributed/fast/``, read
# as a diff against the reference). :func:`minidl.distributed.use` picks
# one, as ``minidl.kernels.use`` picks the kernels' backend; as a context
# manager it switches back at the end of the ``with``, and
# :func:`~minidl.distributed.backend` says which one is active:
print("default:", backend())
with use("reference"):
    print('inside with use("reference"):', backend())
print("after the with:", backend())

# %%
# The second file is the reference executor, ``minidl/distributed/run.py``:
# about a hundred lines, read first. Its ``run`` only drives a generator,
# ``start``, to the end:
print(without_docstring(run.run))

# %%
# and ``start`` is the whole algorithm. Again the real source:
print(inspect.getsource(run.start))

# %%
# Read it one round at a time:
#
# * Each receive gets a fresh *landing* array. The data may not go straight
#   into the buffer: the same round may still be sending from that range
#   (recursive doubling sends and reduces the same elements), and a receive
#   that reduces must be added to what is there, not written over it.
# * Receives are posted (``Irecv``) before sends (``Isend``), so that a
#   message that arrives early finds its landing array ready, and MPI need
#   not hold it aside. The sends go straight from a slice of the buffer, a
#   view, so nothing is copied.
#   Because every message of the round is posted before any is waited for,
#   no rank blocks in a send while its peer blocks in another: no deadlock,
#   whatever the order in which the ranks get there.
# * ``AllOf`` wraps MPI's ``Testall`` and ``Waitall``, so a round's requests
#   can be tested and waited on as one. While they are not all done, the
#   generator *yields* them: ``run`` waits and calls ``next`` again, while
#   :func:`~minidl.distributed.iallreduce` (below) hands control back to
#   your code in between.
# * Then each landing array is reduced into its range of the buffer by the
#   compiled kernel (or copied there, for a receive that copies).
# * Every message carries the same ``TAG``. MPI never lets a message
#   overtake an earlier one with the same sender, tag and communicator, so
#   two messages between the same ranks arrive in the order the schedule
#   lists them.
#
# That is all the reference executor does; the timing (``began``,
# ``arrived``) only feeds the optional trace. It is correct for every
# schedule that keeps the rules of :mod:`minidl.distributed.steps`,
# including one you write yourself (next tutorial).

# %%
# On real ranks: ``examples/ring_allreduce.py``
# ---------------------------------------------
# Now the ranks are real. ``examples/`` holds scripts you run yourself with
# the command on their first line; this one prints the ring's schedule, runs
# it on every rank of the job with a :class:`~minidl.distributed.Trace`,
# checks the result bit for bit against MPI's own ``Allreduce``, gathers
# every rank's trace onto rank 0 and prints its summary, and writes a
# Chrome trace that https://ui.perfetto.dev opens. Here is the whole file:
from pathlib import Path

import minidl

EXAMPLES = Path(minidl.__file__).resolve().parents[1] / "examples"
print((EXAMPLES / "ring_allreduce.py").read_text())

# %%
# :func:`~minidl.testing.run_mpi` runs it as its first line says,
# ``mpiexec -n 4 python -m mpi4py examples/ring_allreduce.py``, with a
# timeout that ends the whole job if anything hangs:
print(run_mpi(EXAMPLES / "ring_allreduce.py", 4, timeout=120).stdout)

# %%
# The model against the clock: ``examples/cost_model.py``
# -------------------------------------------------------
# :func:`~minidl.distributed.calibrate` measures ``alpha``, ``beta`` and
# ``gamma`` on the machine it runs on (it times exchanges between ranks 0
# and 1, and the reduction kernel), and the model then predicts any
# schedule's time. ``examples/cost_model.py`` does that on two ranks, then
# times the ring, recursive doubling and the naive all-reduce from 1 KiB to
# 4 MiB (10 interleaved repeats, medians) and prints prediction and
# measurement side by side:
print((EXAMPLES / "cost_model.py").read_text())

# %%
# To show how much such measurements move, the build runs the script three
# times, one job after another; here is the first run's output:
ROW = re.compile(r"^\s*(\d+)\s+(\w+)\s+(\d+) us\s+(\d+) us\s+[\d.]+\s+(\d+) us$")
runs = [run_mpi(EXAMPLES / "cost_model.py", 2, timeout=120).stdout for _ in range(3)]
print(runs[0])
predicted, measured = {}, {}
for output in runs:
    for line in output.splitlines():
        if match := ROW.match(line):
            nbytes, algorithm, guess, clock, _ = match.groups()
            predicted.setdefault((algorithm, int(nbytes)), []).append(float(guess) * 1e-6)
            measured.setdefault((algorithm, int(nbytes)), []).append(float(clock) * 1e-6)
assert measured, "no table rows found in the output of examples/cost_model.py"

# %%
# The same numbers drawn: each point is the median over the three runs of
# the script's own medians, and the bar through it spans the three runs,
# slowest to fastest; dashed lines are the model's predictions, which move
# too, since each run calibrates afresh. On the right, one cause of the gap
# measured in this process: the seconds per byte of the reduction
# (``np.add`` of two arrays of each size into the first, each timed right
# after an untimed call, as a loop finds them; 15 interleaved repeats,
# median and range) against the single ``gamma`` of the model, the first
# run's.
REPEATS = 15
reduce_sizes = [1 << k for k in range(18, 27)]  # 256 KiB to 64 MiB per array
arrays = {n: (np.ones(n // 4, np.float32), np.ones(n // 4, np.float32)) for n in reduce_sizes}
per_byte = {n: [] for n in reduce_sizes}
for _ in range(REPEATS):
    for n, (a, b) in arrays.items():
        np.add(a, b, out=a)  # untimed: brings the arrays into the caches, if they fit
        calls = max(1, (1 << 23) // n)
        started = time.perf_counter()
        for _ in range(calls):
            np.add(a, b, out=a)
        per_byte[n].append((time.perf_counter() - started) / calls / n)
del arrays
gamma_line = re.search(r"gamma ([\d.]+) ns per byte", runs[0])
gamma_fit = float(gamma_line.group(1)) * 1e-9

fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
for i, algorithm in enumerate(["ring", "recursive_doubling", "naive"]):
    sizes = sorted(n for a, n in measured if a == algorithm)
    runs_of = [np.array(measured[algorithm, n]) for n in sizes]
    middle = np.array([np.median(t) for t in runs_of])
    spread = [middle - [t.min() for t in runs_of], [t.max() for t in runs_of] - middle]
    ax.errorbar(sizes, middle, yerr=spread, fmt="o-", color=f"C{i}", capsize=3,
                label=f"{algorithm}, measured")
    ax.plot(sizes, [np.median(predicted[algorithm, n]) for n in sizes], "--", color=f"C{i}",
            label=f"{algorithm}, model")
ax.set(xscale="log", yscale="log", xlabel="buffer size (bytes)", ylabel="time per all-reduce (s)")
ax.set_title("all-reduce on 2 ranks: model and clock\n"
             "(measured on the machine that built these docs)", fontsize=10)
ax.legend(fontsize=7)
middle = np.array([np.median(per_byte[n]) for n in reduce_sizes])
low, high = (np.array([f(per_byte[n]) for n in reduce_sizes]) for f in (np.min, np.max))
ax2.errorbar(reduce_sizes, middle * 1e9, yerr=[(middle - low) * 1e9, (high - middle) * 1e9],
             fmt="o-", color="C3", capsize=3, label="np.add, per byte of one array")
ax2.axhline(gamma_fit * 1e9, color="0.3", linestyle="--", label="the model's gamma (one slope)")
ax2.set(xscale="log", xlabel="bytes per array", ylabel="ns per byte", ylim=(0, None))
ax2.set_title("reducing, per byte, by size\n"
              "(measured on the machine that built these docs)", fontsize=10)
ax2.legend(fontsize=7)
fig.tight_layout()

# %%
# Where the model is off, and why
# -------------------------------
# The script's printout above names the case furthest off in the run shown,
# and the figure shows all of them; which way each is off changes from
# machine to machine, and between runs on one machine. What the model
# leaves out is a list of mechanisms, each of which can be checked:
#
# * **Caches.** ``beta`` and ``gamma`` are single slopes, fitted to buffers
#   of 1 to 64 MiB. But moving or adding a byte costs less while the data
#   sits in a core's own cache, more from the cache the cores share, and
#   most from main memory; the right panel measures it for the reduction
#   alone. Where the regimes change depends on the machine's cache sizes
#   (``lscpu`` lists them), so the model can predict too long a time for
#   buffers that fit in a cache and too short a time for those that do
#   not: one slope cannot be right at both ends.
# * **Which cache the bytes are in.** The script times each size right
#   after other sizes' calls and a barrier, so each turn's first call may
#   find its buffers out of the caches; its ``first call`` column compares
#   that call with the ones after it. ``benchmarks/bench_allreduce.py`` times long runs of calls
#   back to back instead, and at the same sizes gets other numbers.
# * **The executor's Python.** ``alpha`` is one bare ``Sendrecv`` of 8
#   bytes, and the model adds one ``overhead`` per call, but the Python the
#   executor runs in each round is in neither. It weighs most on short
#   buffers, where the model is too optimistic.
# * **MPI's protocols.** MPICH moves a message between two ranks of one
#   machine through shared-memory cells when it is short and with a single
#   copy through the kernel when it is long; one straight line in ``beta``
#   has no such step.
# * **Sharing cores.** When the ranks (or other programs) share cores, a
#   rank waits for its core as well as for its messages, and the whole
#   collective waits for the slowest rank. The model has no term for it.
#
# ``calibrate`` also made its model the one ``algorithm="auto"`` uses, in
# the job that measured it; in this process ``auto`` still uses the
# default, below. To measure with more care, and with more ranks, run
# ``benchmarks/bench_allreduce.py`` under ``mpiexec``.
print("this process's model for auto:", calibration.current())

# %%
# Starting a collective without waiting for it
# --------------------------------------------
# :func:`~minidl.distributed.iallreduce` is MPI's ``MPI_Iallreduce`` for the same
# schedules: it posts the first round's messages and returns a
# :class:`~minidl.distributed.CollectiveRequest`. Each call of ``request.test()``
# takes the schedule as far as it goes without blocking (a message has
# arrived: reduce it, post the next round) and says whether it is done;
# ``request.wait()`` finishes it. In between, the rank computes. This is how
# data-parallel training overlaps the all-reduce of one layer's gradients
# with the backward pass of the layers before it, without a thread. Inside,
# the request holds the executor's generator, the ``start`` printed above
# (or the fast executor's own), and each ``test()`` moves it on by one
# ``next``.
#
# One rule: finish a started collective before starting another of minidl's
# on the same communicator. Their messages carry the same tags, so two at
# once, waited for in a different order on each rank, would take each
# other's messages and sum wrongly; minidl refuses the second with an error
# that says so. Give each its own communicator (``comm.Dup()``) to run
# several at once.
#
# Below, ``tutorials/programs/overlap.py`` has each rank start the ring on
# 4 MiB, then do 40 slices of other work (matrix products), testing the
# request after each; and, for comparison, the same with a blocking
# ``allreduce`` before the work. (The tutorials' own multi-rank programs
# live in ``tutorials/programs/``, each a file you run with the command on
# its first line.)
PROGRAMS = Path(minidl.__file__).resolve().parents[1] / "tutorials" / "programs"
print((PROGRAMS / "overlap.py").read_text())

# %%
result = run_mpi(PROGRAMS / "overlap.py", 2, timeout=120).results[0]
print("measured on the machine that built these docs, medians of 20 interleaved repeats:")
print(f"blocking allreduce, then the work: {result['times']['blocking'] * 1e3:.2f} ms")
print(f"iallreduce, the work, wait:        {result['times']['started'] * 1e3:.2f} ms")
if result["tests"] is None:
    print("the started all-reduce was not done at any of the 40 tests: it finished in the wait")
else:
    print(f"the started all-reduce was found done at the test after slice {result['tests']} of 40")
print(f"and it sums like the blocking one: 1 + 2 = {result['sum']:.0f}")

# %%
# Whether the started version is faster depends on who moves the bytes.
# Between two ranks of one machine, MPI copies a message when a rank calls
# into it (posting, testing, waiting), so a collective advances only at the
# tests, and the work between two tests must be short for the messages to
# keep moving; on a network, the card moves them meanwhile. And short
# messages are best left blocking: on a few kilobytes, the Python that moves
# a request along costs as much as the messages.

# %%
# When the ranks disagree
# -----------------------
# A collective built from point-to-point messages trusts every rank to call
# it the same way. If one rank passes 1001 elements where the others pass
# 1000, the ring's chunks no longer line up: a message is longer than its
# receive, or a rank waits for one that never comes. So before its first
# message every collective checks that the ranks agree: each rank hashes
# what it passed (collective, size, dtype, op, algorithm, root, executor)
# and the ranks take the maximum of the hash and of minus the hash; these
# are equal only if every rank's hash is the same. If not, the ranks
# exchange what they passed,
# and every rank raises the same error naming who passed what, instead of
# hanging. Below, rank 1 passes one element more:
print((PROGRAMS / "disagree.py").read_text())

# %%
for rank, message in enumerate(run_mpi(PROGRAMS / "disagree.py", 2, timeout=60).results):
    print(f"rank {rank}: {message}\n")

# %%
# The check is one collective on two integers, so its cost is latency:
# between two ranks, one exchange of 16 bytes. To keep it that short, it
# takes the maximum by *dissemination*: in round ``k`` each rank sends what
# it has seen to rank ``r + 2**k`` and keeps the larger values; after
# ``ceil(lg p)`` rounds every rank has seen every value, some twice, which a
# maximum does not mind. The reference executor sends these messages with
# ``Sendrecv`` (:func:`minidl.distributed.fingerprint.maximum`); the fast
# one sends the same messages more cheaply. The check also compares the
# executors: a rank on one and a rank on the other are told, not left to
# hang. A loop whose ranks cannot disagree, like the timings above, passes
# ``check=False``, on every rank alike.

# %%
# Both executors run the same rounds and add the same numbers in the same
# order, so their results are *bit-identical*, not merely close
# (``tests/test_distributed_executors.py`` checks it for every algorithm).
# What the fast one changes, and what that buys, is told in its docstrings
# (``minidl/distributed/fast/``) and measured by
# ``benchmarks/bench_allreduce.py``, whose row ``ring, reference executor``
# sits beside the fast ring and MPI's own ``Allreduce``.

# %%
# Beyond allreduce: scatter, gather and alltoall
# ----------------------------------------------
# Three more of MPI's collectives are written the same way: a schedule per
# algorithm that can be printed, simulated, priced and drawn, and run on
# real ranks by either executor. :func:`~minidl.distributed.scatter` sends
# chunk ``r`` of the root's buffer to rank ``r``. Its binomial tree takes
# ``ceil(lg p)`` rounds: in each, every rank that holds chunks for others
# hands half of them on. On 4 ranks, the root sends chunks 2-3 to rank 2,
# which passes chunk 3 on to rank 3 while the root sends chunk 1 to rank 1:
print(schedule("binomial", 4, 0, 8, collective="scatter"))
print(schedule("binomial", 4, 2, 8, collective="scatter"))

# %%
# :func:`~minidl.distributed.gather` is the same rounds played backwards.
# :func:`~minidl.distributed.alltoall` is the new kind: every rank sends a
# block of its own to *every* rank. The buffer is ``p`` equal blocks, and
# block ``j`` is meant for rank ``j``. The pairwise algorithm swaps one block
# with each other rank in turn, ``p - 1`` exchanges (and one idle round,
# when the partner would be the rank itself). Rank 1 of 4:
print(schedule("pairwise", 4, 1, 8, collective="alltoall"))

# %%
# Stack the ``p`` buffers as the rows of a matrix of blocks, and alltoall
# *transposes* it: afterwards block ``j`` of rank ``i`` holds what rank
# ``j`` meant for rank ``i``. Simulated on 4 ranks, one element per block,
# labelled ``10 i + j`` for "from rank ``i``, for rank ``j``":
p = 4
inputs = [np.array([10 * i + j for j in range(p)]) for i in range(p)]
outputs, _ = simulate("pairwise", inputs, collective="alltoall")
print("before, one row per rank:\n", np.stack(inputs))
print("after:\n", np.stack(outputs))
print("a block transpose:", np.array_equal(np.stack(outputs), np.stack(inputs).T))

# %%
# Drawn, the pairwise alltoall is a set of swaps (dashed: copied in, not
# reduced), a different partner in each round:
draw_schedule("pairwise", 4, collective="alltoall")
plt.tight_layout()

# %%
# Pairwise puts every byte on the wire once but pays one latency per peer;
# Bruck's algorithm (``algorithm="bruck"``) pays only ``ceil(lg p)``
# latencies but sends about half the buffer in each round. Priced on 64
# ranks, the model prefers Bruck's for short buffers and pairwise for long
# ones, as MPICH does:
for nbytes in (1 << 10, 1 << 24):
    prices = {
        a: cost(a, 64, nbytes, alpha, beta, gamma, collective="alltoall").seconds
        for a in ("pairwise", "bruck")
    }
    print(f"{nbytes:>9} bytes: " + ", ".join(f"{a} {s * 1e6:.0f} us" for a, s in prices.items()))

# %%
# What is alltoall for? Data parallelism never needs it, but two newer
# kinds of parallelism are built on it. In *expert parallelism* (a
# mixture-of-experts layer), each rank holds some of the experts, and each
# token must go to the rank of the expert its router picked: block ``j`` of
# rank ``i`` is rank ``i``'s tokens for rank ``j``'s experts. One alltoall
# sends them, the experts run, and a second alltoall brings the results
# home. In *sequence parallelism* (as in DeepSpeed-Ulysses), each rank
# holds a slice of a long sequence for every attention head; attention
# needs the whole sequence, so an alltoall re-deals the activations as the
# whole sequence for a slice of the heads, each rank computes attention for
# its heads, and another alltoall deals them back. On real ranks it is one
# call, in place, like the others: ``alltoall(buf)``.

# %%
# The whole family on real ranks is ``examples/collectives_family.py``, a
# script you run yourself with the command on its first line. It scatters,
# gathers and alltoalls on three ranks, checks each result against MPI's own
# collective, on both executors. Here it is, run as it says:
EXAMPLE = EXAMPLES / "collectives_family.py"
print(EXAMPLE.read_text())
print(run_mpi(EXAMPLE, 3, timeout=120).stdout)
