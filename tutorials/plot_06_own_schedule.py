"""
Writing your own schedule
=========================

The previous tutorial printed, drew, simulated and ran the library's
all-reduce algorithms. Each of them is a *schedule*: a short generator that
says, for one rank, what it sends and receives in each round. Nothing
about a schedule is special to the library, so you can write one yourself,
and the same three engines run it: the simulator (one process, any number
of ranks), the cost model, and the executor on real MPI ranks. This
tutorial writes the simplest all-reduce there is, checks it, breaks it on
purpose to see the simulator's errors, prices it, and then runs
``examples/my_schedule.py``, a bidirectional ring, on four real ranks
against the built-in algorithms.

The course assignment that goes with this tutorial: :doc:`/assignments/collectives`.
"""

# %%
# A schedule is data
# ------------------
# A schedule is a function ``fn(p, rank, n)``: for one ``rank`` of ``p``,
# working on a buffer of ``n`` elements, it yields one
# :class:`~minidl.distributed.Round` per round. A round lists *steps*, made
# with three helpers from :mod:`minidl.distributed.steps`:
#
# * ``send(peer, bounds, chunk)``: send this chunk of my buffer to ``peer``;
# * ``reduce_from(peer, bounds, chunk)``: receive that chunk from ``peer`` and
#   add it into mine;
# * ``copy_from(peer, bounds, chunk)``: receive it and write it over mine.
#
# ``bounds`` is how the buffer is cut into chunks:
# :func:`~minidl.distributed.chunk_bounds` splits ``n`` elements into
# balanced chunks and handles ``n`` smaller than the number of chunks.
#
# The simplest all-reduce: every rank sends its whole buffer to rank 0, which
# adds them all up (round 0); rank 0 sends the sum back to everyone, who
# copies it (round 1). Every rank yields both rounds, even one with nothing
# to do in it (rule 1 of :mod:`~minidl.distributed.steps`).
import matplotlib.pyplot as plt
import numpy as np

import minidl
from minidl.distributed import (
    Round,
    ScheduleError,
    chunk_bounds,
    copy_from,
    cost,
    reduce_from,
    schedule,
    send,
    simulate,
)
from minidl.testing import run_mpi
from minidl.viz import draw_schedule


def star(p, rank, n):
    """All-reduce through rank 0: everyone sends to it, it sums, it sends the sum back."""
    bounds = chunk_bounds(n, 1)  # one chunk: the whole buffer
    if rank == 0:
        yield Round.of(*(reduce_from(peer, bounds, 0) for peer in range(1, p)))
        yield Round.of(*(send(peer, bounds, 0) for peer in range(1, p)))
    else:
        yield Round.of(send(0, bounds, 0))
        yield Round.of(copy_from(0, bounds, 0))


# %%
# It is plain data: :func:`~minidl.distributed.schedule` takes the function
# where it takes an algorithm's name, and prints what one rank does.
print(schedule(star, 4, 0, 8))
print(schedule(star, 4, 2, 8))

# %%
# and :func:`~minidl.viz.draw_schedule` draws every rank's messages: a fan-in
# of solid arrows (reduced in), then a fan-out of dashed ones (copied in).
draw_schedule(star, 4)
plt.tight_layout()

# %%
# Checking it in the simulator
# ----------------------------
# :func:`~minidl.distributed.simulate` plays every rank in this one process,
# over one NumPy buffer each. It checks that every send meets a matching
# receive in the same round, and at the end that every rank holds the sum.
# The inputs depend on the rank and on the index, so a chunk delivered to
# the wrong place would show; and whole numbers add up exactly, in any order.
for p in (1, 2, 5, 16):
    for n in (0, 1, 7):
        inputs = [np.arange(n, dtype=np.float64) * (r + 1) + r for r in range(p)]
        outputs, trace = simulate(star, inputs)
        assert all(np.array_equal(out, np.sum(inputs, axis=0)) for out in outputs)
print("star all-reduces on 1, 2, 5 and 16 simulated ranks, 0, 1 and 7 elements")

# %%
# The simulator's :class:`~minidl.distributed.Trace` counts what each rank
# did. On 4 ranks of 7 float64, rank 0 receives and reduces three whole
# buffers and sends three back; every other rank sends one and receives one:
outputs, trace = simulate(star, [np.arange(7.0) * (r + 1) + r for r in range(4)])
trace.summary()


# %%
# Breaking it on purpose
# ----------------------
# Under MPI, a receive with no matching send is a job that hangs forever. In
# the simulator it is an error that names the round and the ranks. Here rank
# 0 forgets to send the sum back to the last rank:
def forgetful_star(p, rank, n):
    """Like ``star``, but rank 0 skips the last rank in round 1."""
    bounds = chunk_bounds(n, 1)
    if rank == 0:
        yield Round.of(*(reduce_from(peer, bounds, 0) for peer in range(1, p)))
        yield Round.of(*(send(peer, bounds, 0) for peer in range(1, p - 1)))
    else:
        yield Round.of(send(0, bounds, 0))
        yield Round.of(copy_from(0, bounds, 0))


inputs = [np.arange(6.0) + 10 * r for r in range(4)]
try:
    simulate(forgetful_star, inputs)
except ScheduleError as error:
    print("ScheduleError:", error)


# %%
# A schedule can keep every rule and still compute the wrong thing. Here the
# ranks copy the sum back in round 1 but rank 0 never added anything up in
# round 0: each rank's buffer simply went to rank 0 and stayed there. The
# simulator compares the result with NumPy's sum and says so:
def copy_star(p, rank, n):
    """Like ``star``, but rank 0 copies what arrives in round 0 instead of adding it."""
    bounds = chunk_bounds(n, p)  # one chunk per rank, so the copies do not overlap
    if rank == 0:
        yield Round.of(*(copy_from(peer, bounds, peer) for peer in range(1, p)))
        yield Round.of(*(send(peer, bounds, 0, p) for peer in range(1, p)))
    else:
        yield Round.of(send(0, bounds, rank))
        yield Round.of(copy_from(0, bounds, 0, p))


try:
    simulate(copy_star, inputs)
except ScheduleError as error:
    print("ScheduleError:", error)

# %%
# What it costs
# -------------
# :func:`~minidl.distributed.cost` prices a schedule from its rounds alone:
# ``alpha`` per message, ``beta`` per byte on the wire and ``gamma`` per byte
# reduced, each round as long as its busiest rank. Rank 0 of the star is
# busy indeed: it receives ``p - 1`` whole buffers, adds them, and sends
# ``p - 1`` back, while the ring sends every rank ``2 (p - 1) / p`` of one
# buffer. With made-up but plausible constants (5 us per message, 5 GB/s on
# the wire, 10 GB/s for the reduction):
alpha, beta, gamma = 5e-6, 2e-10, 1e-10
print(f"{'p':>3} {'bytes':>9} {'star (us)':>10} {'ring (us)':>10}")
for p in (4, 16, 64):
    for nbytes in (1 << 10, 1 << 20):
        mine = cost(star, p, nbytes, alpha, beta, gamma)
        ring = cost("ring", p, nbytes, alpha, beta, gamma)
        print(f"{p:>3} {nbytes:>9} {mine.seconds * 1e6:>10.0f} {ring.seconds * 1e6:>10.0f}")

# %%
# The star takes 2 rounds whatever ``p`` is, and the ring ``2 (p - 1)``, but
# rank 0 starts ``p - 1`` messages in each of its rounds: on a short buffer,
# where latency is the price, the two cost about the same. On a long one
# rank 0 carries ``p - 1`` times the buffer each way, and the star loses more
# the more ranks there are. The model says so before anything runs.
#
# On real ranks: ``examples/my_schedule.py``
# ------------------------------------------
# The script below is a schedule the library does not have, a
# *bidirectional ring*: half of the buffer goes round clockwise, as in the
# ring, while the other half goes round counter-clockwise, so both
# directions of every link carry data in every round. It prints the
# schedule, checks it in the simulator on 1 to 8 ranks (and shows two broken
# versions raise :class:`~minidl.distributed.ScheduleError`), runs it on real
# ranks by passing the function as ``allreduce``'s ``algorithm``, checks the
# result against MPI's own ``Allreduce``, and times it against the built-in
# algorithms. Here is the whole file; run it yourself with the command on
# its first line.
from pathlib import Path

EXAMPLE = Path(minidl.__file__).resolve().parents[1] / "examples" / "my_schedule.py"
print(EXAMPLE.read_text())

# %%
# Run as it says, on 4 ranks, while these docs were built (the timeout ends
# the whole job if anything hangs):
print(run_mpi(EXAMPLE, 4, timeout=120).stdout)

# %%
# The times at the end were measured on the machine that built these docs,
# as 8 interleaved repeats of one call each, and they change from run to run.
# Read them as a question rather than an answer. The cost model counts a
# rank's messages and bytes, not which way they go, so it gives the
# bidirectional ring no gain: the same bytes, and two messages per round
# where the ring has one. Whether using both directions of every link pays
# depends on the network; between the ranks of one machine a message is a
# copy through memory, with no links to fill. And when 4 ranks share fewer
# than 4 cores, a rank that waits for its core holds up the whole call. Run
# the script on your own machines, with more ranks, and compare.
#
# Where to go from here: write another all-reduce (a tree that reduces up
# and broadcasts down, or Rabenseifner's halving and doubling, then compare
# with ``minidl/distributed/butterfly.py``), draw it, simulate it on 64
# ranks, price it, and time it with this script. The next tutorial puts the
# all-reduce to work: data-parallel training.
