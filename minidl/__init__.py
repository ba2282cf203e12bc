"""minidl: a from-scratch deep-learning framework for teaching parallel and
distributed training.

Importing minidl never starts MPI: :mod:`mpi4py` is imported only by the code
that sends messages.
"""

__version__ = "0.1.0"
