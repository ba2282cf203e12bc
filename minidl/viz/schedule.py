"""Draw a collective's schedule: who sends which chunk to whom, round by round.

Ranks are rows and rounds are columns; each message is an arrow from its
sender's row at the start of its round to its receiver's row at the end,
coloured by chunk, solid when the receiver reduces it in and dashed when it
copies it. A rank's messages to itself (local copies, as in Bruck's alltoall)
are no arrows: the cell says how many it makes. The ring's staircase, the
butterfly's crossings and the tree's fan-in are the pictures to remember.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.distributed.schedules import ROOTED, check_layout, resolve, rounds_of
from minidl.distributed.steps import ScheduleFn

_LABEL_UP_TO = 8  # chunk labels on every arrow for at most this many ranks; beyond, they clutter


def _chunk_colour(chunk: int, chunks: int) -> Any:
    """The colour of a message carrying ``chunk`` of ``chunks``: a different one for each chunk.

    Up to 10 chunks take tab10's colours. Beyond, tab10 would repeat (chunk 10
    would look like chunk 0), so each chunk takes its own sample of the
    ``turbo`` colormap, visited with a stride that puts neighbouring chunks far
    apart in colour.
    """
    import matplotlib.pyplot as plt

    if chunks <= 10:
        return plt.get_cmap("tab10")(chunk)
    # An odd stride coprime with the count visits every sample exactly once.
    stride = next(s for s in range(chunks // 3 | 1, chunks + 1, 2) if np.gcd(s, chunks) == 1)
    return plt.get_cmap("turbo")(((chunk * stride) % chunks) / (chunks - 1))


def draw_schedule(
    algorithm: str | ScheduleFn,
    p: int,
    n: int | None = None,
    *,
    collective: str = "allreduce",
    root: int = 0,
    ax: Any = None,
) -> Any:
    """Draw every message of a collective on ``p`` ranks with matplotlib.

    Parameters
    ----------
    algorithm : str or callable
        An algorithm of ``collective`` (see :data:`minidl.distributed.ALGORITHMS`),
        or a schedule generator ``fn(p, rank, n)`` of your own.
    p : int
        Number of ranks.
    n : int, optional
        Number of elements; the picture only depends on it through empty
        chunks. Defaults to ``p``.
    collective : str, optional
        ``"allreduce"`` (default), ``"reduce_scatter"``, ``"allgather"``,
        ``"broadcast"``, ``"reduce"``, ``"scatter"``, ``"gather"`` or
        ``"alltoall"``.
    root : int, optional
        The root of ``"broadcast"``, ``"reduce"``, ``"scatter"`` and ``"gather"``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure if None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> from minidl.viz import draw_schedule
    >>> ax = draw_schedule("ring", 4)
    >>> ax.figure.savefig("ring.png")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt  # imported here: minidl.viz must import without matplotlib

    n = p if n is None else n
    name, _ = resolve(collective, algorithm)
    check_layout(p, n, root, collective)
    plans = [rounds_of(collective, algorithm, p, rank, n, root) for rank in range(p)]
    rounds = len(plans[0])
    if ax is None:
        # At least 6 inches wide, so that a schedule of few rounds still has room for its title.
        _, ax = plt.subplots(figsize=(max(6.0, 1.2 + 1.1 * rounds), 1.2 + 0.55 * p))
    chunks = 1 + max(
        (r.chunks.stop - 1 for plan in plans for rnd in plan for r in rnd.recvs), default=0
    )

    for rank, plan in enumerate(plans):
        for k, rnd in enumerate(plan):
            # Messages to itself are counted, not drawn: an arrow from a row to
            # itself would be a flat line over the others.
            local = sum(1 for r in rnd.recvs if r.peer == rank)
            if local:
                label = f"{local} local"
                ax.text(k + 0.5, rank, label, color="0.4", fontsize=7, ha="center", va="center")
            # Each message is drawn once, from the receiving side, which knows
            # whether it is reduced or copied.
            for r in rnd.recvs:
                if r.peer == rank:
                    continue
                single = len(r.chunks) == 1
                colour = _chunk_colour(r.chunks.start, chunks) if single else "0.25"
                ax.annotate(
                    "",
                    xy=(k + 0.88, rank),
                    xytext=(k + 0.12, r.peer),
                    arrowprops=dict(
                        arrowstyle="-|>",
                        color=colour,
                        linewidth=1.6,
                        linestyle="-" if r.reduce else "--",
                        shrinkA=0,
                        shrinkB=0,
                    ),
                )
                if p <= _LABEL_UP_TO:
                    label = (
                        str(r.chunks.start) if single else f"{r.chunks.start}-{r.chunks.stop - 1}"
                    )
                    middle = (k + 0.5, (rank + r.peer) / 2)
                    ax.text(
                        *middle,
                        label,
                        color=colour,
                        fontsize=8,
                        ha="center",
                        va="center",
                        backgroundcolor="white",
                    )

    ax.set_xlim(0, max(rounds, 1))
    ax.set_ylim(p - 0.5, -0.5)  # rank 0 on top
    ax.set_xticks([k + 0.5 for k in range(rounds)], [str(k) for k in range(rounds)])
    ax.set_yticks(range(p), [f"rank {r}" for r in range(p)])
    for k in range(1, rounds):
        ax.axvline(k, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlabel("round")
    where = ""
    if collective in ROOTED:
        outward = collective in ("broadcast", "scatter")
        where = f" from root {root}" if outward else f" to root {root}"
    # Two lines: on one, a long name over a schedule of few rounds ran past the figure's edges.
    ax.set_title(f"{name} {collective}{where}\np={p}, n={n}: {rounds} rounds (numbers: chunks)")
    ax.plot([], [], color="0.25", linestyle="-", label="reduced in")
    ax.plot([], [], color="0.25", linestyle="--", label="copied in")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax
