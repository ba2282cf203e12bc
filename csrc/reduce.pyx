# cython: language_level=3, boundscheck=False, wraparound=False
"""In-place elementwise reductions ``dst[i] = dst[i] OP src[i]``: the kernel
every all-reduce runs once per received chunk.

Reference: ``minidl/kernels/reference.py`` (``np.add(dst, src, out=dst)`` and
friends); ``tests/test_kernels_reduce.py`` checks that both agree exactly.

Memory: reads ``src`` and ``dst`` once and writes ``dst`` once; allocates
nothing. Both arrays must be C-contiguous with the same shape and dtype, so the
loop runs over one flat range of ``dst.size`` elements. The loops are plain C
``for`` loops that ``-O3`` auto-vectorises. The GIL is released around the
loop: minidl itself runs every collective on the calling thread (no
communication thread: see ``minidl.parallel.reducer``), but a program of
yours that reduces in a thread of its own lets the others run meanwhile.

Debugging tip: ``minidl.kernels.use("numpy")`` switches every caller to the
reference without recompiling.
"""

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t

cnp.import_array()

ctypedef fused number:
    float
    double
    int32_t
    int64_t


cdef enum Op:
    OP_SUM
    OP_PROD
    OP_MAX
    OP_MIN


cdef void _reduce(number* dst, const number* src, Py_ssize_t n, Op op) noexcept nogil:
    cdef Py_ssize_t i
    if op == OP_SUM:
        for i in range(n):
            dst[i] = dst[i] + src[i]
    elif op == OP_PROD:
        for i in range(n):
            dst[i] = dst[i] * src[i]
    elif op == OP_MAX:
        # NaN propagates as in np.maximum: a NaN in dst stays (no comparison
        # with it is true) and a NaN in src is taken (src != src).
        for i in range(n):
            if src[i] > dst[i] or src[i] != src[i]:
                dst[i] = src[i]
    else:
        for i in range(n):
            if src[i] < dst[i] or src[i] != src[i]:
                dst[i] = src[i]


cdef _check(cnp.ndarray dst, cnp.ndarray src, str name):
    if cnp.PyArray_TYPE(dst) != cnp.PyArray_TYPE(src):
        raise TypeError(f"{name}: dtypes differ: dst is {dst.dtype}, src is {src.dtype}")
    if not cnp.PyArray_SAMESHAPE(dst, src):
        raise ValueError(
            f"{name}: shapes differ: dst {(<object>dst).shape}, src {(<object>src).shape}"
        )
    if not cnp.PyArray_ISWRITEABLE(dst):
        raise ValueError(f"{name}: dst is read-only")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(dst) and cnp.PyArray_IS_C_CONTIGUOUS(src)):
        raise ValueError(f"{name}: dst and src must be C-contiguous (use np.ascontiguousarray)")


cdef _run(cnp.ndarray dst, cnp.ndarray src, Op op, str name):
    _check(dst, src, name)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dst)
    cdef int typenum = cnp.PyArray_TYPE(dst)
    cdef void* d = cnp.PyArray_DATA(dst)
    cdef void* s = cnp.PyArray_DATA(src)
    # NPY_LONG is int64 on Linux and macOS; NPY_LONGLONG is int64 everywhere.
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _reduce(<float*>d, <const float*>s, n, op)
        elif typenum == cnp.NPY_FLOAT64:
            _reduce(<double*>d, <const double*>s, n, op)
        elif typenum == cnp.NPY_INT32:
            _reduce(<int32_t*>d, <const int32_t*>s, n, op)
        elif typenum == cnp.NPY_INT64 or typenum == cnp.NPY_LONGLONG:
            _reduce(<int64_t*>d, <const int64_t*>s, n, op)
        else:
            with gil:
                raise TypeError(
                    f"{name}: unsupported dtype {dst.dtype}; "
                    "expected float32, float64, int32 or int64"
                )
    return dst


def add_into(cnp.ndarray dst not None, cnp.ndarray src not None):
    """``dst += src`` in place; returns ``dst``."""
    return _run(dst, src, OP_SUM, "add_into")


def prod_into(cnp.ndarray dst not None, cnp.ndarray src not None):
    """``dst *= src`` in place; returns ``dst``."""
    return _run(dst, src, OP_PROD, "prod_into")


def max_into(cnp.ndarray dst not None, cnp.ndarray src not None):
    """``dst = maximum(dst, src)`` in place; returns ``dst``."""
    return _run(dst, src, OP_MAX, "max_into")


def min_into(cnp.ndarray dst not None, cnp.ndarray src not None):
    """``dst = minimum(dst, src)`` in place; returns ``dst``."""
    return _run(dst, src, OP_MIN, "min_into")
