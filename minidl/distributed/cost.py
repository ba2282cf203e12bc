"""The alpha-beta-gamma cost model, priced from the schedule itself.

A message of ``m`` bytes costs ``alpha + m beta`` (latency plus bandwidth),
and reducing ``m`` bytes costs ``m gamma`` (Hockney's model, extended with
gamma as in Thakur, Rabenseifner & Gropp 2005, "Optimization of collective
communication operations in MPICH"). Rather than quote each algorithm's
formula, :func:`cost` walks the schedules of all ``p`` ranks round by round and
adds up what the busiest rank does; the textbook formulas are then a test of
the schedules, not the source of the numbers.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from minidl.distributed.schedules import check_layout, resolve, rounds_of
from minidl.distributed.steps import ScheduleFn


@dataclass(frozen=True)
class Cost:
    """The price of one collective, term by term.

    Attributes
    ----------
    rounds : int
        Rounds in which some rank sends or receives.
    messages : int
        The alpha terms: per round, the most messages one rank sends (or
        receives, if more), summed over rounds.
    wire_bytes : int
        The beta terms: per round, the most bytes one rank sends (or
        receives, if more), summed over rounds.
    reduced_bytes : int
        The gamma terms: per round, the most bytes one rank reduces, summed.
    seconds : float
        ``messages alpha + wire_bytes beta + reduced_bytes gamma``.
    """

    rounds: int
    messages: int
    wire_bytes: int
    reduced_bytes: int
    seconds: float


def cost(
    algorithm: str | ScheduleFn,
    p: int,
    nbytes: int,
    alpha: float,
    beta: float,
    gamma: float,
    *,
    collective: str = "allreduce",
    root: int = 0,
) -> Cost:
    """Predict the time of a collective on ``p`` ranks over a buffer of ``nbytes`` bytes.

    Each round lasts as long as its busiest rank: ``alpha`` per message it
    starts, ``beta`` per byte it puts on (or takes off) the wire, ``gamma``
    per byte it reduces. Links are full-duplex, so a rank that sends one
    message and receives another in a round pays for one. The schedule is
    built for a buffer of ``nbytes`` one-byte elements, so chunks are split
    to the byte.

    Parameters
    ----------
    algorithm : str or callable
        An algorithm of ``collective``, or a schedule generator of your own.
    p : int
        Number of ranks.
    nbytes : int
        Size of the buffer in bytes.
    alpha : float
        Seconds per message (latency).
    beta : float
        Seconds per byte sent (inverse bandwidth).
    gamma : float
        Seconds per byte reduced.
    collective : str, optional
        ``"allreduce"`` (default) or another collective of :data:`~minidl.distributed.ALGORITHMS`.
    root : int, optional
        The root of ``"broadcast"`` and ``"reduce"``.

    Returns
    -------
    Cost
        The terms and their total in seconds.

    Examples
    --------
    The ring on 4 ranks: ``2 (p - 1) = 6`` messages, ``2 (p - 1) / p n`` bytes
    on the wire, ``(p - 1) / p n`` reduced.

    >>> cost("ring", 4, 1024, alpha=1e-6, beta=1e-9, gamma=1e-10)
    Cost(rounds=6, messages=6, wire_bytes=1536, reduced_bytes=768, seconds=7.6128e-06)
    """
    resolve(collective, algorithm)
    for value, what in ((p, "p"), (nbytes, "nbytes")):
        try:
            operator.index(value)  # ints and NumPy's, not 1e6 (a float)
        except TypeError:
            raise TypeError(f"cost: {what} must be an int, got {value!r}") from None
    if nbytes < 0:
        raise ValueError(f"cost: nbytes must be >= 0, got {nbytes}")
    check_layout(p, nbytes, root, collective)
    for value, what in ((alpha, "alpha"), (beta, "beta"), (gamma, "gamma")):
        if value < 0:
            raise ValueError(f"cost: {what} must be >= 0 seconds, got {value}")
    plans = [rounds_of(collective, algorithm, p, rank, nbytes, root) for rank in range(p)]
    rounds = messages = wire_bytes = reduced_bytes = 0
    for k in range(len(plans[0])):
        everyone = [plan[k] for plan in plans]
        busiest = max(max(len(r.sends), len(r.recvs)) for r in everyone)
        if busiest == 0:
            continue
        rounds += 1
        messages += busiest
        wire_bytes += max(
            max(sum(s.count for s in r.sends), sum(x.count for x in r.recvs)) for r in everyone
        )
        reduced_bytes += max(sum(x.count for x in r.recvs if x.reduce) for r in everyone)
    seconds = messages * alpha + wire_bytes * beta + reduced_bytes * gamma
    return Cost(rounds, messages, wire_bytes, reduced_bytes, seconds)
