"""Pictures and printouts of what minidl does: autograd graphs, collective and pipeline
schedules."""

from minidl.viz.graph import print_graph, to_dot
from minidl.viz.pipeline import draw_pipeline
from minidl.viz.schedule import draw_schedule

__all__ = ["print_graph", "to_dot", "draw_schedule", "draw_pipeline"]
