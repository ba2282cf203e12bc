"""The course's assignments and their tasks: the one table every command reads.

``list`` prints it, ``starter`` strips the regions of its tasks, ``grade``
runs each task's tests and ``check`` proves the kit sound from it. Adding an
assignment is adding an :class:`Assignment` to :data:`ASSIGNMENTS`, its
regions to minidl's source, its marked tests to ``tests/assignments/`` and
its markers to ``pyproject.toml`` (see ``docs/assignments/index.rst``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One thing a student writes: the code of every solution region with this ``id``.

    Attributes
    ----------
    id : str
        The name on ``# BEGIN SOLUTION <id>`` lines, e.g. ``"ring-reduce-scatter"``.
    points : float
        What passing all of its tests is worth.
    marker : str
        The pytest marker of its tests (``pytest -m <marker>`` runs them).
    multi_rank : bool
        Whether its tests launch ranks under ``mpiexec``.
    timeout : float
        Seconds its tests may run in all before the grader kills them and
        scores the task 0.
    builds_on : tuple of str
        Tasks of the same assignment that its tests also exercise: stripping
        one of those may fail this task's tests too.
    """

    id: str
    points: float
    marker: str
    multi_rank: bool = False
    timeout: float = 60.0
    builds_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Assignment:
    """One assignment: a handout, a test file and the tasks it grades.

    Attributes
    ----------
    name : str
        What ``--assignment`` takes, e.g. ``"collectives"``.
    title : str
        One line for listings.
    handout : str
        The handout page, relative to ``docs/`` (without ``.rst``).
    tests : str
        The task tests, relative to the repository root.
    tasks : tuple of Task
    builds_on : tuple of str
        Earlier assignments whose solutions its tests run through (the
        layers' tests call backward, which the autograd assignment writes):
        their starter may fail this assignment's tests, no other's may.
    """

    name: str
    title: str
    handout: str
    tests: str
    tasks: tuple[Task, ...]
    builds_on: tuple[str, ...] = ()

    @property
    def max_points(self) -> float:
        """The sum of its tasks' points."""
        return sum(t.points for t in self.tasks)

    def task(self, task_id: str) -> Task:
        """The task called ``task_id``; raises KeyError naming the tasks there are."""
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(f"assignment {self.name!r} has no task {task_id!r}; "
                       f"its tasks: {', '.join(t.id for t in self.tasks)}")


ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment(
        "autograd", "Reverse-mode autodiff: the backward pass and four derivatives",
        "assignments/autograd", "tests/assignments/test_a1_autograd.py",
        (
            Task("topological-order", 30, "a1_topological_order"),
            Task("broadcast-backward", 20, "a1_broadcast_backward"),
            Task("matmul-backward", 25, "a1_matmul_backward"),
            Task("reduction-backward", 25, "a1_reduction_backward"),
        ),
    ),
    Assignment(
        "kernels", "Array kernels: im2col, col2im and max pooling in NumPy",
        "assignments/kernels", "tests/assignments/test_a2_kernels.py",
        (
            Task("im2col", 40, "a2_im2col"),
            Task("col2im", 30, "a2_col2im"),
            Task("maxpool2d", 30, "a2_maxpool2d"),
        ),
    ),
    Assignment(
        "layers", "Layers and optimizers: Conv2d via im2col, SGD with momentum, Adam",
        "assignments/layers", "tests/assignments/test_a3_layers.py",
        (
            Task("conv2d", 40, "a3_conv2d"),
            Task("sgd", 30, "a3_sgd"),
            Task("adam", 30, "a3_adam"),
        ),
        builds_on=("autograd", "kernels"),
    ),
    Assignment(
        "collectives", "Collectives as schedules: ring reduce-scatter, all-gather, tree broadcast",
        "assignments/collectives", "tests/assignments/test_a4_collectives.py",
        (
            Task("ring-reduce-scatter", 35, "a4_ring_reduce_scatter", multi_rank=True,
                 timeout=120),
            Task("ring-allgather", 30, "a4_ring_allgather", multi_rank=True, timeout=120),
            Task("binomial-broadcast", 35, "a4_binomial_broadcast", multi_rank=True,
                 timeout=120),
        ),
    ),
    Assignment(
        "data-parallel", "Data parallelism: gradient buckets, averaging, overlap with iallreduce",
        "assignments/data_parallel", "tests/assignments/test_a5_data_parallel.py",
        (
            Task("buckets", 30, "a5_buckets"),
            Task("average-gradients", 30, "a5_average_gradients", multi_rank=True, timeout=120),
            Task("overlap", 40, "a5_overlap", multi_rank=True, timeout=120,
                 builds_on=("average-gradients",)),
        ),
        builds_on=("autograd",),
    ),
    Assignment(
        "pipelines", "Pipeline parallelism: the 1F1B schedule as data",
        "assignments/pipelines", "tests/assignments/test_a6_pipelines.py",
        (
            Task("1f1b-schedule", 100, "a6_1f1b_schedule", multi_rank=True, timeout=120),
        ),
        builds_on=("autograd",),
    ),
    Assignment(
        "parameter-servers", "Parameter servers: SSP's staleness bound",
        "assignments/parameter_servers", "tests/assignments/test_a7_parameter_servers.py",
        (
            Task("ssp-staleness-bound", 100, "a7_ssp_staleness_bound", multi_rank=True,
                 timeout=120),
        ),
        builds_on=("autograd", "layers"),
    ),
    Assignment(
        "performance", "Performance: calibrate alpha, beta, gamma; predict the crossover",
        "assignments/performance", "tests/assignments/test_a8_performance.py",
        (
            Task("measure-alpha", 25, "a8_measure_alpha", multi_rank=True, timeout=120),
            Task("fit-per-byte", 35, "a8_fit_per_byte"),
            Task("crossover", 40, "a8_crossover", multi_rank=True, timeout=120,
                 builds_on=("measure-alpha", "fit-per-byte")),
        ),
        builds_on=("collectives",),
    ),
)
"""Every assignment, in course order."""


def get_assignment(name: str) -> Assignment:
    """The assignment called ``name``.

    Raises
    ------
    KeyError
        Naming the assignments there are.
    """
    for a in ASSIGNMENTS:
        if a.name == name:
            return a
    raise KeyError(f"no assignment {name!r}; the assignments are: "
                   f"{', '.join(a.name for a in ASSIGNMENTS)}")


def task_owner(task_id: str, assignments: tuple[Assignment, ...] = ASSIGNMENTS) -> Assignment:
    """The assignment that holds the task ``task_id``; raises KeyError if none does."""
    for a in assignments:
        if any(t.id == task_id for t in a.tasks):
            return a
    raise KeyError(f"no assignment has a task {task_id!r}")


def depends_on(assignment: Assignment, other: Assignment,
               assignments: tuple[Assignment, ...] = ASSIGNMENTS) -> bool:
    """Whether ``assignment`` builds on ``other``, directly or through others."""
    by_name = {a.name: a for a in assignments}
    stack, seen = list(assignment.builds_on), set()
    while stack:
        name = stack.pop()
        if name == other.name:
            return True
        if name not in seen and name in by_name:
            seen.add(name)
            stack.extend(by_name[name].builds_on)
    return False
