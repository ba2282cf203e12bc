"""The alpha-beta-gamma cost model, priced from the schedule itself.

A message of ``m`` bytes costs ``alpha + m beta`` (latency plus bandwidth),
and reducing ``m`` bytes costs ``m gamma`` (Hockney's model, extended with
gamma as in Thakur, Rabenseifner & Gropp 2005, "Optimization of collective
communication operations in MPICH"). Rather than quote each algorithm's
formula, :func:`cost` walks the schedules of all ``p`` ranks round by round and
adds up what the busiest rank does; the textbook formulas are then a test of
the schedules, not the source of the numbers.

A message a rank sends to itself (rule 4 of :mod:`minidl.distributed.steps`:
Bruck's alltoall rearranges blocks that way) never touches the network, so it
costs no alpha and no beta: it is a memory copy, counted in
:attr:`Cost.local_bytes` and left out of the seconds, as the textbook
formulas leave out the local rotations of Bruck's algorithm.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from minidl.distributed.schedules import check_layout, resolve, rounds_of
from minidl.distributed.steps import Round, ScheduleFn


@dataclass(frozen=True)
class Cost:
    """The price of one collective, term by term.

    Attributes
    ----------
    rounds : int
        Rounds in which some rank sends or receives a message to another rank.
    messages : int
        The alpha terms: per round, the most messages one rank sends (or
        receives, if more), summed over rounds.
    wire_bytes : int
        The beta terms: per round, the most bytes one rank sends (or
        receives, if more), summed over rounds.
    reduced_bytes : int
        The gamma terms: per round, the most bytes one rank reduces, summed.
    local_bytes : int
        Not priced: per round, the most bytes one rank copies within its own
        buffer (messages to itself), summed over rounds.
    seconds : float
        ``messages alpha + wire_bytes beta + reduced_bytes gamma``.
    """

    rounds: int
    messages: int
    wire_bytes: int
    reduced_bytes: int
    local_bytes: int
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
    message and receives another in a round pays for one. Messages to itself
    cost nothing here (they are counted in ``local_bytes``); a round with
    only those is not counted in ``rounds``. The schedule is built for a
    buffer of ``nbytes`` one-byte elements, so chunks are split to the byte.

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
        The root of ``"broadcast"``, ``"reduce"``, ``"scatter"`` and ``"gather"``.

    Returns
    -------
    Cost
        The terms and their total in seconds.

    Examples
    --------
    The ring on 4 ranks: ``2 (p - 1) = 6`` messages, ``2 (p - 1) / p n`` bytes
    on the wire, ``(p - 1) / p n`` reduced.

    >>> c = cost("ring", 4, 1024, alpha=1e-6, beta=1e-9, gamma=1e-10)
    >>> c.rounds, c.messages, c.wire_bytes, c.reduced_bytes, c.seconds
    (6, 6, 1536, 768, 7.6128e-06)

    Bruck's alltoall on 8 ranks: 3 messages of half the buffer, and local
    copies that the model does not price.

    >>> c = cost("bruck", 8, 1024, 1e-6, 1e-9, 1e-10, collective="alltoall")
    >>> c.rounds, c.messages, c.wire_bytes, c.local_bytes
    (3, 3, 1536, 3072)
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
        if not value >= 0:  # NaN too: it would price every algorithm NaN
            raise ValueError(f"cost: {what} must be >= 0 seconds, got {value}")
    plans = [rounds_of(collective, algorithm, p, rank, nbytes, root) for rank in range(p)]
    rounds = messages = wire_bytes = reduced_bytes = local_bytes = 0
    for k in range(len(plans[0])):
        # Per rank: (messages out, messages in, bytes out, bytes in, reduced, copied locally).
        terms = [_round_terms(rank, plan[k]) for rank, plan in enumerate(plans)]
        local_bytes += max(t[5] for t in terms)
        busiest = max(max(t[0], t[1]) for t in terms)
        if busiest == 0:
            continue
        rounds += 1
        messages += busiest
        wire_bytes += max(max(t[2], t[3]) for t in terms)
        reduced_bytes += max(t[4] for t in terms)
    seconds = messages * alpha + wire_bytes * beta + reduced_bytes * gamma
    return Cost(rounds, messages, wire_bytes, reduced_bytes, local_bytes, seconds)


def _round_terms(rank: int, rnd: Round) -> tuple[int, int, int, int, int, int]:
    """What ``rank`` does in ``rnd``: messages out and in, bytes out and in, reduced, copied.

    Its messages to itself are only copied bytes (counted once, as sent).
    """
    sends = [s for s in rnd.sends if s.peer != rank]
    recvs = [r for r in rnd.recvs if r.peer != rank]
    return (
        len(sends),
        len(recvs),
        sum(s.count for s in sends),
        sum(r.count for r in recvs),
        sum(r.count for r in recvs if r.reduce),
        sum(s.count for s in rnd.sends if s.peer == rank),
    )
