"""The fast path: the reference path's collectives, tuned, with the same results to the bit.

Read it as a diff against the reference path
(:func:`minidl.distributed.call.check_call`, :func:`~minidl.distributed.schedules.rounds_of`,
:mod:`minidl.distributed.run`). Each of its three steps does what the
reference step does, faster:

- :func:`validate`: the last call on each buffer is remembered, and the next
  one only compared with it (:mod:`~minidl.distributed.fast.calls`);
- :func:`maximum`: the agreement check's maximum by dissemination on
  persistent requests (:mod:`~minidl.distributed.fast.agreement`);
- :func:`schedule`: the rounds compiled once into a plan of MPI messages:
  long messages cut into segments so that reduction overlaps transfer, mid-length
  ones of short buffers into pieces under MPICH's single-copy threshold, scratch
  kept from call to call (:func:`~minidl.distributed.fast.executor.compile_plan`);
- :func:`run` and :func:`start`: a round of one step each way is one
  ``Sendrecv``; a plan run twice on one buffer is bound to it with persistent
  requests, started again at each call (:class:`~minidl.distributed.fast.executor.Bound`).

What it buys is printed by ``benchmarks/bench_allreduce.py`` (the reference
executor's ratio to MPI's ``Allreduce`` beside the fast one's).
"""

from __future__ import annotations

from minidl.distributed.call import Call
from minidl.distributed.fast import executor
from minidl.distributed.fast.agreement import maximum
from minidl.distributed.fast.calls import validate
from minidl.distributed.fast.executor import Plan, execute, start

run = execute
"""Perform a plan on a buffer, blocking: :func:`~minidl.distributed.fast.executor.execute`."""


def schedule(call: Call) -> Plan:
    """The call's schedule compiled into a :class:`~minidl.distributed.fast.executor.Plan`,
    kept with the call."""
    plan = call.plan
    if plan is None:
        plan = executor.plan_of(
            call.collective, call.algorithm, call.p, call.rank, call.n, call.root,
            call.dtype.itemsize, executor.SEGMENT_BYTES, executor.PIECE_BYTES,
        )
        object.__setattr__(call, "plan", plan)  # a frozen dataclass: kept once, here
    return plan


__all__ = ["maximum", "run", "schedule", "start", "validate"]
