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
``allreduce`` to MPI's ``Isend`` (the reference executor), runs the
algorithms on two real MPI ranks under ``mpiexec`` against the model, and
shows what the fast executor changes and what that buys, measured as this
page was built. It ends with scatter, gather and alltoall.
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
import time

import matplotlib.pyplot as plt
import numpy as np

from minidl.distributed import ALGORITHMS, Calibration, calibration, cost, schedule, simulate
from minidl.testing import run_mpi
from minidl.testing.mpi import find_mpiexec
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
ax.set_title(f"allreduce on 64 ranks, alpha={alpha:g} s, beta={beta:g} s/B, gamma={gamma:g} s/B")
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

from minidl.distributed import allreduce, backend, executors, run, use


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
# as the kernels have two backends, and the module
# ``minidl/distributed/executors.py`` is only the table of which function
# does which step. Here it is, for both, read from that table:
with use("reference"):
    reference = executors.current()
with use("fast"):
    fast = executors.current()
print(f"{'step':<10}{'reference executor':<50}fast executor")
for step in ("validate", "maximum", "schedule", "run", "start"):
    plain, tuned = getattr(reference, step), getattr(fast, step)
    print(
        f"{step:<10}{plain.__module__ + '.' + plain.__name__:<50}"
        f"{tuned.__module__}.{tuned.__name__}"
    )

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
# schedule that keeps the rules of :mod:`minidl.distributed.steps`, and it
# is slower than it could be. The fast executor, the default, is the same
# idea tuned; we come back to it once we have seen real ranks.

# %%
# On real ranks, against the model
# --------------------------------
# Now the ranks are real. The script below calibrates the model on the
# machine it runs on (:func:`~minidl.distributed.calibrate` times exchanges
# between ranks 0 and 1 and the reduction kernel), then times the ring,
# recursive doubling and MPI's own ``Allreduce`` over a range of sizes, all
# on the default (fast) executor. It must run under ``mpiexec``;
# :func:`~minidl.testing.run_mpi` starts it on two ranks with the command a
# student would type::
#
#     mpiexec -n 2 python -m mpi4py script.py
#
# and adds a timeout that ends the whole job if anything hangs, and collects
# what rank 0 hands to :func:`~minidl.testing.report`.
SCRIPT = """
import time

import numpy as np
from mpi4py import MPI

from minidl.distributed import allreduce, calibrate
from minidl.testing import report

comm = MPI.COMM_WORLD
model = calibrate(comm)
sizes = [1 << k for k in range(10, 23, 2)]  # 1 KiB to 4 MiB
algorithms = ["ring", "recursive_doubling", "mpi"]
times = {a: [] for a in algorithms}
for nbytes in sizes:
    buf = np.zeros(nbytes // 4, np.float32)
    loops = {a: [] for a in algorithms}
    for _ in range(5):  # interleaved, so a busy moment slows every algorithm alike
        for a in algorithms:
            repeats = max(1, (1 << 20) // nbytes)
            comm.Barrier()
            started = time.perf_counter()
            for _ in range(repeats):
                allreduce(buf, algorithm=a, check=False)
            elapsed = comm.allreduce(time.perf_counter() - started, op=MPI.MAX)
            loops[a].append(elapsed / repeats)
    for a in algorithms:
        times[a].append(float(np.median(loops[a])))
report({"model": model, "sizes": sizes, "times": times} if comm.rank == 0 else None)
"""

print("mpiexec:", find_mpiexec())
job = run_mpi(SCRIPT, 2, timeout=120)
measured = job.results[0]
model, sizes, times = measured["model"], measured["sizes"], measured["times"]
print(model)

# %%
# The calibrated ``alpha`` includes mpi4py's cost per message, and
# ``overhead`` is what minidl's Python spends per call whatever the algorithm
# (checking arguments, finding the compiled plan); the model adds it to every
# prediction. Measured (solid) against predicted (dashed):
fig, ax = plt.subplots(figsize=(7, 4.5))
for i, algorithm in enumerate(["ring", "recursive_doubling"]):
    colour = f"C{i}"
    ax.loglog(sizes, times[algorithm], "o-", color=colour, label=f"{algorithm}, measured")
    guesses = [model.predict(algorithm, 2, s) for s in sizes]
    ax.loglog(sizes, guesses, "--", color=colour, label=f"{algorithm}, model")
ax.loglog(sizes, times["mpi"], "s-", color="0.4", label="MPI's own Allreduce")
ax.set(xlabel="buffer size (bytes)", ylabel="time per allreduce (s)")
ax.set_title("allreduce on 2 ranks of this machine")
ax.legend()
fig.tight_layout()

# %%
# The same numbers as a table. On two ranks, recursive doubling is one
# exchange of the whole buffer and the ring two exchanges of half of it, so
# the ring only pays off once the half of the reduction it saves outweighs its
# second latency: around ``2 alpha / gamma`` bytes, in the model.
header = ("size", "ring us", "model", "rec. doubling us", "model", "MPI us")
print("{:>9} {:>9} {:>7} {:>17} {:>7} {:>8}".format(*header))
for i, nbytes in enumerate(sizes):
    ring_t, rd_t, mpi_t = times["ring"][i], times["recursive_doubling"][i], times["mpi"][i]
    print(
        f"{nbytes:>9} {ring_t * 1e6:>9.1f} {model.predict('ring', 2, nbytes) * 1e6:>7.1f} "
        f"{rd_t * 1e6:>17.1f} {model.predict('recursive_doubling', 2, nbytes) * 1e6:>7.1f} "
        f"{mpi_t * 1e6:>8.1f}"
    )
print(f"model crossover, 2 alpha / gamma = {2 * model.alpha / model.gamma / 1024:.0f} KiB")

# %%
# ``calibrate`` also made this model the one ``algorithm="auto"`` uses, in
# the job that measured it; in this process ``auto`` still uses the default.
# To see the numbers on your own machine, or with more ranks, run
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
# Below, each rank starts the ring on 4 MiB, then does 40 slices of other
# work (matrix products), testing the request after each; and, for
# comparison, the same with a blocking ``allreduce`` before the work.
OVERLAP = """
import time

import numpy as np
from mpi4py import MPI

from minidl.distributed import allreduce, iallreduce
from minidl.testing import report

comm = MPI.COMM_WORLD
buf = np.ones(1 << 20, np.float32)
a = np.random.default_rng(comm.rank).random((96, 96))

def work():
    return a @ a

def blocking():
    allreduce(buf, check=False)
    for _ in range(40):
        work()

def started():
    request = iallreduce(buf, check=False)
    tests_until_done = None
    for k in range(40):
        work()
        if tests_until_done is None and request.test():
            tests_until_done = k + 1
    request.wait()
    return tests_until_done

for run in (blocking, started):  # warm up
    run()
times = {"blocking": [], "started": []}
for _ in range(20):
    for name, run in (("blocking", blocking), ("started", started)):
        comm.Barrier()
        t = time.perf_counter()
        out = run()
        times[name].append(time.perf_counter() - t)
        if name == "started":
            tests = out
buf[:] = comm.rank + 1
iallreduce(buf).wait()
report({"times": {k: float(np.median(v)) for k, v in times.items()}, "tests": tests,
        "sum": float(buf[0])} if comm.rank == 0 else None)
"""

result = run_mpi(OVERLAP, 2, timeout=120).results[0]
print(f"blocking allreduce, then the work: {result['times']['blocking'] * 1e3:.2f} ms")
print(f"iallreduce, the work, wait:        {result['times']['started'] * 1e3:.2f} ms")
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
DISAGREE = """
import numpy as np
from mpi4py import MPI

from minidl.distributed import allreduce
from minidl.testing import report

comm = MPI.COMM_WORLD
try:
    allreduce(np.ones(1000 + comm.rank, np.float32))
    message = "no error"
except ValueError as error:
    message = str(error)
report(message)
"""

for rank, message in enumerate(run_mpi(DISAGREE, 2, timeout=60).results):
    print(f"rank {rank}: {message}\n")

# %%
# The check is one collective on two integers, so its cost is latency:
# between two ranks, one exchange of 16 bytes. To keep it that short, it
# takes the maximum by *dissemination*: in round ``k`` each rank sends what
# it has seen to rank ``r + 2**k`` and keeps the larger values; after
# ``ceil(lg p)`` rounds every rank has seen every value, some twice, which a
# maximum does not mind. The reference executor sends these messages with
# ``Sendrecv`` (:func:`minidl.distributed.fingerprint.maximum`); the fast
# one sends the same messages more cheaply (next section). A loop whose
# ranks cannot disagree, like the timings above, passes ``check=False``, on
# every rank alike.

# %%
# What the fast path changes, and why
# -----------------------------------
# The reference executor spends its time where a student can see it: a few
# lines of Python per round and per call, fresh arrays every round, every
# argument checked again at every call. On a gradient bucket of a few
# kilobytes that Python costs as much as the messages, and a training loop
# makes the very same call on the very same buffer at every step. The fast
# executor, ``minidl/distributed/fast/``, runs the same schedules to the
# same bits and changes only *how*. As a diff against the reference path:
#
# * **Calls are remembered** (``fast/calls.py``). The last call on each
#   buffer is kept, and the next call on that buffer only compares one tuple
#   of arguments with it instead of checking each again: a loop repeats its
#   calls, and every check is Python on the path of a short message.
# * **The agreement check runs on persistent requests**
#   (``fast/agreement.py``). They are the same dissemination messages as the
#   reference check's ``Sendrecv``, set up once per communicator and only
#   started at each call: the check moves 16 bytes, so describing the
#   messages to MPI is most of its cost. The messages stay the same so that
#   a rank on one executor still meets a rank on the other, and is told.
# * **Schedules are compiled into plans** (``compile_plan`` and ``plan_of``
#   in ``fast/executor.py``). The rounds become flat tuples of messages
#   (element range, peer, tag), made once per kind of call and kept:
#   walking ``Round`` objects costs microseconds per round, as much as a
#   short message.
# * **Scratch is kept** instead of fresh landing arrays at every round.
#   Allocating an array costs as much as a short message, so short scratch
#   stays with its plan for the next call.
# * **An exchange round is one** ``Sendrecv``. A round of one step out and
#   one in, like every round of the ring, needs no ``Irecv``, ``Isend`` and
#   ``Waitall``: MPI pairs a ``Sendrecv`` without deadlock, in one Python call.
# * **A plan is bound to its buffer on the second use** (``Bound``). A plan
#   of exchanges over a buffer of up to 4 MiB, run again on the same array,
#   turns its messages into MPI *persistent requests* (``Send_init``,
#   ``Recv_init``), and each later call only starts them (``Startall``)
#   and waits. The second use is the sign that the buffer comes back, like
#   a gradient bucket; a buffer used once is not worth setting up.
# * **Long messages travel in segments** (longer than ``SEGMENT_BYTES``).
#   While the kernel reduces one segment, the next is arriving, into two
#   segments of scratch that stay in cache where a whole chunk would not.
# * **Mid-length steps of short buffers travel in pieces** under 8 KiB
#   (``PIECE_BYTES``), for a reason of MPICH's, below.
# * **Each message of a round has a tag of its own.** The reference
#   executor can use one tag because MPI keeps messages in the order they
#   were posted; persistent requests may be started in any order, so their
#   tags must tell them apart.
#
# The pieces need a word. MPICH sends a message of 8 KiB or more between
# two ranks of one machine with a *single copy* (the receiver reads the
# sender's memory through the kernel), and shorter ones through
# shared-memory cells. The single copy is slow right after the sender
# wrote the data, which in a collective it always has; so on a buffer of
# up to 64 KiB the fast path cuts each step of 8 KiB or more into pieces
# under 8 KiB, started together. A plan shows them. :func:`plan_of
# <minidl.distributed.fast.executor.plan_of>` takes the arguments of
# :func:`~minidl.distributed.schedule` (the collective, the algorithm, ``p``
# ranks, this ``rank``, ``n`` elements, the ``root``, which an allreduce
# ignores), then the size of one element in bytes (``itemsize``) and the
# two cut-offs above, which every rank must share. Recursive doubling on 2
# ranks over 32 KiB of float32 is one exchange of the whole buffer:
from minidl.distributed.fast import executor

plan = executor.plan_of(
    collective="allreduce",
    algorithm="recursive_doubling",
    p=2,
    rank=0,
    n=8192,
    root=0,
    itemsize=4,
    segment_bytes=executor.SEGMENT_BYTES,
    piece_bytes=executor.PIECE_BYTES,
)
exchange = plan.rounds[0].exchange
print(f"rounds: {len(plan.rounds)}, an exchange: {exchange is not None}")
print(f"every round an exchange, so it may be bound to a buffer: {plan.bindable}")
for m in exchange.sends:
    print(f"to rank {m.peer}: elements {m.start:5d} to {m.stop:5d}, tag {m.tag}")
print(f"the step in is reduced: {exchange.reduce}, through {plan.scratch} elements of scratch")

# %%
# The ratio, measured as this page was built
# ------------------------------------------
# What does the tuning buy? The script below times the ring on both
# executors and MPI's own ``Allreduce`` (called directly with mpi4py, as a
# program without minidl would) on the same buffer, at 1 KiB, 64 KiB and
# 1 MiB. The three rows take turns in short passes, in an order that rotates,
# so that a busy moment of the machine slows them alike; each ratio is the
# median over the passes of the ratio within one pass. The budget is small,
# so that the docs build stays fast.
TIMING = """
import time

import numpy as np
from mpi4py import MPI

from minidl.distributed import allreduce, use
from minidl.testing import report

comm = MPI.COMM_WORLD
ROWS = ("reference", "fast", "MPI")
PASSES, SLICE = 7, 0.04  # per size: 7 passes of about 0.04 s per row


def ring():
    allreduce(buf, algorithm="ring", check=False)


def mpi():
    comm.Allreduce(MPI.IN_PLACE, buf)


def per_call(call, repeats):
    comm.Barrier()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    # The slowest rank's time: a collective waits for it. And every rank gets
    # the same number back, so every rank makes the same number of calls.
    return comm.allreduce(time.perf_counter() - started, op=MPI.MAX) / repeats


def median_ratio(t, a, b):
    # Ratio pass by pass, then the median: the rows of one pass ran within a
    # fraction of a second of each other, while a machine's speed drifts.
    return float(np.median(t[a] / t[b]))


def row(name, repeats):
    if name == "MPI":
        return per_call(mpi, repeats)
    with use(name):  # switched once, outside the timed loop
        return per_call(ring, repeats)


table = []
for nbytes in (1 << 10, 1 << 16, 1 << 20):
    buf = np.zeros(nbytes // 4, np.float32)  # zeros: the sums never overflow
    repeats = {}
    for name in ROWS:
        row(name, 2)  # warm up: plans compiled, the fast path bound at the second call
        repeats[name] = max(1, int(SLICE / row(name, 1)))
    times = {name: [] for name in ROWS}
    for k in range(PASSES):
        for name in ROWS[k % 3 :] + ROWS[: k % 3]:
            times[name].append(row(name, repeats[name]))
    t = {name: np.array(seconds) for name, seconds in times.items()}
    line = {"size": nbytes, **{name: float(np.median(t[name])) for name in ROWS}}
    for a, b in (("reference", "MPI"), ("fast", "MPI"), ("reference", "fast")):
        line[f"{a} / {b}"] = median_ratio(t, a, b)
    table.append(line)
report(table if comm.rank == 0 else None)
"""


def human(nbytes):
    """1 KiB, 64 KiB, 1 MiB."""
    return f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KiB"


table = run_mpi(TIMING, 2, timeout=120).results[0]
print("ring allreduce of float32 on 2 ranks, measured at build time on this machine:")
print(
    f"{'size':>8} {'reference us':>13} {'fast us':>8} {'MPI us':>8}   "
    f"{'reference / MPI':>16} {'fast / MPI':>11} {'reference / fast':>17}"
)
for line in table:
    print(
        f"{human(line['size']):>8} {line['reference'] * 1e6:>13.1f} "
        f"{line['fast'] * 1e6:>8.1f} {line['MPI'] * 1e6:>8.1f}   "
        f"{line['reference / MPI']:>16.2f} {line['fast / MPI']:>11.2f} "
        f"{line['reference / fast']:>17.2f}"
    )

# %%
# A ratio ``a / b`` above 1 means that ``a`` took longer than ``b``. The
# last column is what the fast path's tuning buys at each size, on the
# machine that built this page, at the moment it did: these numbers vary
# from run to run and from machine to machine. What to look for is where
# the time goes. On a short buffer, a call is mostly the Python around a
# few tiny messages, which is what the fast path cuts; on a long one, it is
# mostly moving and adding bytes, which both executors leave to MPI and to
# the same compiled kernel.
#
# For careful measurements (every algorithm, sizes up to 64 MiB, more
# passes, and the memory traffic an allreduce cannot avoid as a yardstick),
# run ``benchmarks/bench_allreduce.py`` under ``mpiexec``: its row
# ``ring, reference executor`` is this table's reference column, measured
# with more care.

# %%
# Switching executors
# -------------------
# :func:`minidl.distributed.use` picks the executor, as
# ``minidl.kernels.use`` picks the kernels' backend. Called plainly it
# switches for good; as a context manager it switches back at the end of
# the ``with``. :func:`~minidl.distributed.backend` says which one is active:
print("default:", backend())
with use("reference"):
    print('inside with use("reference"):', backend())
print("after the with:", backend())

# %%
# Both executors run the same rounds and add the same numbers in the same
# order, so their results are *bit-identical*, not merely close. The script
# below checks it for every allreduce algorithm on 3 ranks (on 2, ``a + b``
# is ``b + a`` whatever the order; from 3 on, the order of the sums
# matters), on rank- and index-dependent data of a prime number of
# elements. MPI's own ``Allreduce`` adds in an order of its own, so its bits
# need not match; the last column says whether they do here. At the end,
# rank 1 alone switches to the reference executor, which the ranks must not
# do: the agreement check tells every rank so.
USE = """
import numpy as np
from mpi4py import MPI

from minidl.distributed import ALGORITHMS, allreduce, use
from minidl.testing import report

comm = MPI.COMM_WORLD
data = np.random.default_rng(comm.rank).standard_normal(10_007).astype(np.float32)
bits = {}
for algorithm in ALGORITHMS["allreduce"]:
    fast = allreduce(data.copy(), algorithm=algorithm)  # the default executor
    with use("reference"):
        reference = allreduce(data.copy(), algorithm=algorithm)
    mpi = allreduce(data.copy(), algorithm="mpi")
    bits[algorithm] = (reference.tobytes() == fast.tobytes(), mpi.tobytes() == fast.tobytes())

if comm.rank == 1:
    use("reference")  # for good, and on this rank only: a mistake
try:
    allreduce(np.ones(8, np.float32))
    message = "no error"
except ValueError as error:
    message = str(error)
report({"bits": bits, "mixed": message})
"""

ranks = run_mpi(USE, 3, timeout=120).results
print(f"{'algorithm':<20}{'reference == fast':>19}{'MPI == fast':>13}   (on every rank)")
for algorithm in ranks[0]["bits"]:
    same = [all(rank["bits"][algorithm][i] for rank in ranks) for i in (0, 1)]
    print(f"{algorithm:<20}{same[0]!s:>19}{same[1]!s:>13}")
print()
print("rank 0:", ranks[0]["mixed"])

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
from pathlib import Path

import minidl

EXAMPLE = Path(minidl.__file__).resolve().parents[1] / "examples" / "collectives_family.py"
print(EXAMPLE.read_text())
print(run_mpi(EXAMPLE, 3, timeout=120).stdout)
