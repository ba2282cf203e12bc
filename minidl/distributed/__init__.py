"""Collectives written from point-to-point messages, each one inspectable.

Every algorithm is written once, as a *schedule*: a generator that says, for
one rank, what it sends and receives in each round (:mod:`minidl.distributed.steps`).
Three engines run the same schedules without knowing which algorithm they run:

- :func:`allreduce` and the other collectives (:func:`reduce_scatter`,
  :func:`allgather`, :func:`broadcast`, :func:`reduce`, :func:`scatter`,
  :func:`gather`, :func:`alltoall`) run them on real MPI ranks
  (:func:`iallreduce` without blocking), with one of two executors that give
  the same bits: the reference one (:mod:`minidl.distributed.run`, read it
  first) or the fast one (:mod:`minidl.distributed.fast`, the default),
  chosen with :func:`use`;
- :func:`simulate` runs them in one process over ``p`` in-memory buffers;
- :func:`cost` prices them with the alpha-beta-gamma model.

>>> from minidl.distributed import schedule
>>> print(schedule("recursive_doubling", 4, 0, 6))
recursive_doubling allreduce on rank 0 of 4, n=6: 2 rounds
  round 0: send chunk 0 [0:6] to rank 1; reduce chunk 0 [0:6] from rank 1
  round 1: send chunk 0 [0:6] to rank 2; reduce chunk 0 [0:6] from rank 2

Importing this package does not import :mod:`mpi4py`; the collectives do,
when first called. Outside ``python -m mpi4py``, it makes an uncaught
exception on one rank abort the whole job (:mod:`minidl.distributed.abort`).
:func:`set_timeout` (or ``MINIDL_TIMEOUT``) starts a watchdog that ends the job
when a rank waits too long in minidl's communication, naming where
(:mod:`minidl.distributed.watchdog`).
"""

from minidl.distributed import abort, watchdog
from minidl.distributed.calibration import Calibration, calibrate
from minidl.distributed.checks import DTYPES, OPS
from minidl.distributed.chunking import chunk_bounds, chunk_range
from minidl.distributed.collectives import (
    allgather,
    allreduce,
    alltoall,
    broadcast,
    gather,
    iallreduce,
    reduce,
    reduce_scatter,
    scatter,
)
from minidl.distributed.cost import Cost, cost
from minidl.distributed.executors import backend, use
from minidl.distributed.request import CollectiveRequest
from minidl.distributed.schedules import ALGORITHMS, Schedule, schedule
from minidl.distributed.simulate import Simulation, simulate
from minidl.distributed.steps import (
    Recv,
    Round,
    ScheduleError,
    ScheduleFn,
    Send,
    copy_from,
    reduce_from,
    send,
)
from minidl.distributed.trace import Event, RankStats, Trace
from minidl.distributed.watchdog import get_timeout, set_timeout, watching
from minidl.distributed.world import world

abort.install()
watchdog._from_environment()  # MINIDL_TIMEOUT

__all__ = [
    "ALGORITHMS",
    "DTYPES",
    "OPS",
    "Calibration",
    "CollectiveRequest",
    "Cost",
    "Event",
    "RankStats",
    "Recv",
    "Round",
    "Schedule",
    "ScheduleError",
    "ScheduleFn",
    "Send",
    "Simulation",
    "Trace",
    "allgather",
    "allreduce",
    "alltoall",
    "backend",
    "broadcast",
    "calibrate",
    "chunk_bounds",
    "chunk_range",
    "copy_from",
    "cost",
    "gather",
    "get_timeout",
    "iallreduce",
    "reduce",
    "reduce_from",
    "reduce_scatter",
    "scatter",
    "schedule",
    "send",
    "set_timeout",
    "simulate",
    "use",
    "watching",
    "world",
]
