"""The course-assignment kit: solution regions, starter copies, task tests and a grader.

The code a student writes already stands in minidl's own source, between
``# BEGIN SOLUTION <task>`` and ``# END SOLUTION`` (:mod:`~minidl.assignments.regions`).
The kit reads one table of assignments and tasks (:mod:`~minidl.assignments.registry`)
and, from the command line (``python -m minidl.assignments``):

- ``list`` prints every assignment and its tasks with points;
- ``starter --out DIR`` writes a student copy of the repository with the
  chosen assignments' regions replaced by ``raise NotImplementedError``
  (:mod:`~minidl.assignments.starter`);
- ``grade [--path DIR]`` runs each task's marked tests in a tree, multi-rank
  ones under ``mpiexec``, with a timeout per task, and prints a table
  (:mod:`~minidl.assignments.grader`);
- ``check`` proves the kit sound: every task's tests pass on the solution,
  and stripping a task fails its own tests and no other's
  (:mod:`~minidl.assignments.check`).

The instructors' page, ``docs/assignments/index.rst``, says how to use it
and how to add an assignment.
"""

from minidl.assignments.registry import ASSIGNMENTS, Assignment, Task, get_assignment

__all__ = ["ASSIGNMENTS", "Assignment", "Task", "get_assignment"]
