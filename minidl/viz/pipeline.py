"""Draw a pipeline schedule: the classic chart of stages against time.

Each stage is a row; each forward is a box in one colour, each backward in
another, labelled with its micro-batch (and chunk, interleaved); the white
gaps are the bubble. The picture is the simulation's
(:func:`~minidl.parallel.simulate_pipeline`): with ``forward = backward``,
GPipe's and 1F1B's charts show the same bubble, ``(p - 1) / (m + p - 1)`` of
the area, and 1F1B's backwards start before every forward is done.
"""

from __future__ import annotations

from typing import Any

from minidl.parallel.pipeline_schedules import BACKWARD, FORWARD, simulate_pipeline

_FORWARD_COLOUR, _BACKWARD_COLOUR = "#4c72b0", "#dd8452"


def draw_pipeline(
    name: str,
    stages: int,
    micro_batches: int,
    *,
    forward: float = 1.0,
    backward: float = 2.0,
    chunks: int = 1,
    ax: Any = None,
) -> Any:
    """Draw every stage's forwards and backwards of one step over time, with matplotlib.

    Parameters
    ----------
    name, stages, micro_batches, chunks
        As for :func:`~minidl.parallel.pipeline_schedule`.
    forward, backward : float, default 1 and 2
        The time of one micro-batch's forward and backward on one stage.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure if None.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from minidl.viz import draw_pipeline
    >>> ax = draw_pipeline("1f1b", 4, 8)
    >>> ax.figure.savefig("1f1b.png")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt  # imported here: minidl.viz must import without matplotlib

    sim = simulate_pipeline(name, stages, micro_batches, forward=forward, backward=backward,
                            chunks=chunks)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(3 + 0.45 * sim.makespan, 16), 0.8 + 0.5 * stages))
    label_them = sim.makespan <= 60  # beyond, the labels would not fit in their boxes
    for s, spans in enumerate(sim.timeline):
        for span in spans:
            if span.kind not in (FORWARD, BACKWARD):
                continue
            colour = _FORWARD_COLOUR if span.kind == FORWARD else _BACKWARD_COLOUR
            ax.barh(s, span.end - span.start, left=span.start, height=0.8, color=colour,
                    edgecolor="white", linewidth=0.8)
            if label_them:
                text = str(span.micro_batch) + (f"/{span.chunk}" if chunks > 1 else "")
                ax.text((span.start + span.end) / 2, s, text, ha="center", va="center",
                        fontsize=7, color="white")
    ax.set_xlim(0, sim.makespan)
    ax.set_ylim(stages - 0.5, -0.5)  # stage 0 on top
    ax.set_yticks(range(stages), [f"stage {s}" for s in range(stages)])
    ax.set_xlabel("time (one forward = 1)" if forward == 1 else "time")
    chunked = f", {chunks} chunks" if chunks > 1 else ""
    ax.set_title(f"{name}: {stages} stages, {micro_batches} micro-batches{chunked}; "
                 f"bubble {sim.bubble:.0%}", loc="left")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=_FORWARD_COLOUR, label="forward"),
                       Patch(color=_BACKWARD_COLOUR, label="backward")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax
