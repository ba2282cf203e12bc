"""minidl.viz.draw_pipeline: one box per forward and backward, stages as rows, time across."""

from __future__ import annotations

import pytest

from minidl.parallel import simulate_pipeline
from minidl.viz import draw_pipeline

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # draw off-screen

import matplotlib.pyplot as plt  # noqa: E402  (only after choosing the backend)
from matplotlib.patches import Rectangle  # noqa: E402


@pytest.mark.parametrize("name, chunks", [("gpipe", 1), ("1f1b", 1), ("interleaved", 2)])
def test_one_box_per_forward_and_backward_where_the_simulation_puts_it(name, chunks):
    stages, m = 4, 8
    ax = draw_pipeline(name, stages, m, chunks=chunks)
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 2 * stages * m * chunks
    sim = simulate_pipeline(name, stages, m, chunks=chunks)
    starts = sorted((round(b.get_x(), 9), round(b.get_y() + b.get_height() / 2)) for b in boxes)
    expected = sorted((round(s.start, 9), stage) for stage, spans in enumerate(sim.timeline)
                      for s in spans if s.kind in ("forward", "backward"))
    assert starts == expected
    assert ax.get_xlim() == (0, sim.makespan)
    assert f"bubble {sim.bubble:.0%}" in ax.get_title(loc="left")
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"stage {s}" for s in range(stages)]
    plt.close(ax.figure)
