"""minidl.viz.draw_schedule: one arrow per message, ranks as rows, rounds as columns."""

from __future__ import annotations

import numpy as np
import pytest

from minidl.distributed import ALGORITHMS, schedule, simulate
from minidl.viz import draw_schedule

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # draw off-screen

import matplotlib.pyplot as plt  # noqa: E402  (only after choosing the backend)
from matplotlib.text import Annotation  # noqa: E402


def arrows(ax) -> list[Annotation]:
    return [c for c in ax.get_children() if isinstance(c, Annotation)]


@pytest.mark.parametrize("algorithm", list(ALGORITHMS["allreduce"]))
def test_one_arrow_per_message(algorithm):
    p = 5
    ax = draw_schedule(algorithm, p)
    _, trace = simulate(algorithm, [np.zeros(p)] * p)
    assert len(arrows(ax)) == sum(e.kind == "send" for e in trace.events)
    plt.close(ax.figure)


def test_ring_picture_has_ranks_as_rows_and_rounds_as_columns():
    ax = draw_schedule("ring", 4)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rank 0", "rank 1", "rank 2", "rank 3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3", "4", "5"]
    assert ax.get_title().startswith("ring allreduce\np=4, n=4: 6 rounds")
    # Round 0, rank 0 receives chunk 2 from rank 3 and reduces it: a solid arrow.
    first = next(a for a in arrows(ax) if a.xy == (0.88, 0) and a.xyann == (0.12, 3))
    assert first.arrow_patch.get_linestyle() == "-"
    plt.close(ax.figure)


def test_draws_into_given_axes_and_names_the_root():
    fig, ax = plt.subplots()
    assert draw_schedule("scatter_allgather", 6, 12, collective="broadcast", root=2, ax=ax) is ax
    assert "from root 2" in ax.get_title()
    plt.close(fig)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown allreduce algorithm 'spiral'"):
        draw_schedule("spiral", 4)


@pytest.mark.parametrize("p", [4, 11, 16])
def test_every_chunk_has_a_colour_of_its_own(p):
    # Beyond 10 chunks tab10's colours repeat: chunk 10 looked like chunk 0.
    ax = draw_schedule("ring", p)
    colours = {}
    rounds = [schedule("ring", p, rank, p).rounds for rank in range(p)]
    for arrow in arrows(ax):
        k, rank = arrow.xy  # the receiver's end: round k, at the receiving rank's row
        chunk = rounds[int(rank)][int(k)].recvs[0].chunks.start
        colours.setdefault(chunk, set()).add(arrow.arrow_patch.get_edgecolor())
    assert sorted(colours) == list(range(p))
    assert all(len(c) == 1 for c in colours.values()), "one chunk drawn in several colours"
    assert len({c.pop() for c in colours.values()}) == p, "two chunks share a colour"
    plt.close(ax.figure)


def test_title_fits_in_the_figure():
    # A long name over few rounds once ran past both edges of a narrow figure.
    ax = draw_schedule("recursive_doubling", 8)
    fig = ax.figure
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    box = ax.title.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1, (box, fig.bbox)
    plt.close(fig)
