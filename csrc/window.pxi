# What the sliding-window kernels (im2col.pyx, pool.pyx) share: the dtypes
# they compile for, the window geometry as C ints, and the OpenMP thread
# setting. Each module includes this file, so each gets its own copy of the
# thread count, which minidl.kernels.set_num_threads sets in both.
#
# Built without OpenMP (a compiler without -fopenmp: setup.py then leaves the
# flag out), every prange runs as a plain loop on one thread; nothing here
# needs <omp.h>, so the same source compiles both ways.

ctypedef fused real:
    float
    double


cdef struct Geometry:
    # The fields of reference.Window that the loops need, as C ints.
    Py_ssize_t kh, kw, sh, sw, ph, pw, oh, ow


cdef extern from *:
    """
    #ifdef _OPENMP
    #define MINIDL_OPENMP 1
    #else
    #define MINIDL_OPENMP 0
    #endif
    """
    const int MINIDL_OPENMP

OPENMP = bool(MINIDL_OPENMP)
"""Whether this module was compiled with OpenMP; without it every ``prange`` runs on one thread."""

# The most threads any prange in this module uses; minidl.kernels sets it at
# import (OMP_NUM_THREADS, else 1) and in set_num_threads.
cdef int _num_threads = 1

# Below this many elements of work per thread, waking a thread costs more
# than it saves, so small calls stay on one thread; PyTorch's at::parallel_for
# uses the same grain (at::internal::GRAIN_SIZE).
cdef Py_ssize_t GRAIN = 32768


cdef inline int _threads_for(Py_ssize_t work) noexcept nogil:
    """Threads for a loop over ``work`` elements: one per ``GRAIN``, at most ``_num_threads``."""
    return <int>max(1, min(<Py_ssize_t>_num_threads, work // GRAIN))


def set_num_threads(int n):
    """Use ``n`` OpenMP threads from now on (``minidl.kernels.set_num_threads`` checks ``n``)."""
    global _num_threads
    _num_threads = n


def get_num_threads():
    """The number of OpenMP threads this module's kernels use."""
    return _num_threads


cdef Geometry _geometry(window):
    """Copy a ``reference.Window`` into a C struct the loops can read without the GIL."""
    cdef Geometry g
    g.kh, g.kw, g.sh, g.sw = window.kh, window.kw, window.sh, window.sw
    g.ph, g.pw, g.oh, g.ow = window.ph, window.pw, window.oh, window.ow
    return g
