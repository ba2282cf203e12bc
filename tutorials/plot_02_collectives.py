"""
Collectives, step by step
=========================

Data-parallel training ends every step with an *allreduce*: each rank holds
its own gradients, and afterwards every rank holds their sum. minidl writes
each allreduce algorithm once, as a *schedule* that says, round by round,
what one rank sends to whom and what it receives. This tutorial prints the
schedule of the ring allreduce, draws it, runs it on 4 and on 64 simulated
ranks in this one process, prices the algorithms with the alpha-beta-gamma
cost model, and finally runs them on two real MPI ranks under ``mpiexec`` to
see how well the model predicts them.
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
# ``summary()`` and ``to_chrome()`` gather every rank's: call them on every
# rank, not under ``if rank == 0``, or the job waits forever.)
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
# On real ranks, against the model
# --------------------------------
# The same schedules run on real MPI ranks: :func:`minidl.distributed.allreduce`
# sends with mpi4py's buffer methods and reduces with the compiled kernel.
# The script below calibrates the model on the machine it runs on
# (:func:`~minidl.distributed.calibrate` times exchanges between ranks 0 and 1 and
# the reduction kernel), then times the ring, recursive doubling and MPI's own
# ``Allreduce`` over a range of sizes. It must run under ``mpiexec``;
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
# with the backward pass of the layers before it, without a thread. (Inside,
# the executor runs each round as a Python generator that yields the MPI
# request it waits on.)
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
# a request along costs as much as the messages. For the same reason an
# ``allreduce`` of a buffer of up to 4 MiB keeps its messages set up between
# calls (MPI's *persistent* requests, ``Send_init``/``Recv_init``), so that
# a loop reducing the same buffer starts them again instead of describing
# them to MPI every time.
#
# One more thing a real MPI library does behind its point-to-point calls:
# MPICH sends a message of 8 KiB or more between two ranks of one machine
# with a *single copy* (the receiver reads the sender's memory through the
# kernel), and shorter ones through shared-memory cells. The single copy is
# slow right after the sender wrote the data, which in a collective it
# always has; so on a short buffer minidl cuts each step of 8 KiB or more
# into pieces under 8 KiB (``minidl.distributed.fast.executor.PIECE_BYTES``), started
# together. The plan shows them: recursive doubling on 2 ranks over 32 KiB
# of float32 sends one step, in 5 messages with tags of their own.

from minidl.distributed.fast import executor

layout = executor.SEGMENT_BYTES, executor.PIECE_BYTES
plan = executor.plan_of("allreduce", "recursive_doubling", 2, 0, 8192, 0, 4, *layout)
for m in plan.rounds[0].exchange.sends:
    print(f"to rank {m.peer}: elements {m.start:5d} to {m.stop:5d}, tag {m.tag}")

# %%
# When the ranks disagree
# -----------------------
# A collective built from point-to-point messages trusts every rank to call
# it the same way. If one rank passes 1001 elements where the others pass
# 1000, the ring's chunks no longer line up: a message is longer than its
# receive, or a rank waits for one that never comes. So before its first
# message every collective checks that the ranks agree: each rank hashes
# what it passed (collective, size, dtype, op, algorithm, root) and the ranks
# take the maximum of the hash and of minus the hash; these are equal only if
# every rank's hash is the same. If not, the ranks exchange what they passed,
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
# between two ranks, one exchange of 16 bytes. To make it as short as it can
# be, it takes the maximum by *dissemination* (in round ``k`` each rank sends
# what it has seen to rank ``r + 2**k`` and keeps the larger values; after
# ``ceil(lg p)`` rounds every rank has seen every value, some twice, which a
# maximum does not mind) on persistent requests made once per communicator:
# about 4 microseconds on two ranks, a few percent of a 1 MiB allreduce. A
# loop whose ranks cannot disagree, like the timings above, passes
# ``check=False``.
