# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""2-D max pooling: ``maxpool2d_forward`` and ``maxpool2d_backward``.

Reference: ``maxpool2d_forward`` and ``maxpool2d_backward`` in
``minidl/kernels/reference.py``, with the same names, signatures and results,
bit for bit; read them first. ``tests/test_kernels_pool.py`` checks that both
backends agree.

Layout: NCHW. Every ``(n, c)`` image is pooled on its own, so the kernels
treat the batch as ``N * C`` independent ``H x W`` planes; ``indices`` are
flat positions ``h * W + w`` inside a plane.

Parallelism: an OpenMP ``prange`` over the ``N * C`` planes. A thread writes
only the outputs (forward) or the input gradient (backward) of its own
planes, so threads never write the same memory and the result does not
depend on the thread count. The number of threads is at most
``_num_threads``, which :func:`minidl.kernels.set_num_threads` sets (it
starts as ``OMP_NUM_THREADS``, or 1 when that is unset: see there why not
the number of cores), and
one per ``GRAIN`` elements of work, so a small call stays on one thread.

Debugging tip: ``minidl.kernels.use("numpy")`` switches every caller to the
reference without recompiling. To hunt an indexing bug here, set
``boundscheck=True, wraparound=True`` on the first line and reinstall: a bad
memoryview index then raises ``IndexError`` instead of corrupting memory (the
plain pointers of the innermost loops stay unchecked).
"""

import numpy as np

from cython.parallel cimport prange
from libc.stdint cimport int64_t

from minidl.kernels.reference import (
    check_index_range,
    check_indices,
    check_shape,
    float_array,
    pool_geometry,
)

include "window.pxi"


cdef void _maxpool_plane(
    const real[:, :, ::1] x, real[:, :, ::1] out, int64_t[:, :, ::1] indices,
    Py_ssize_t p, Geometry g,
) noexcept nogil:
    """Pool plane ``p``: every window's largest element and where it is."""
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t i, j, h, w, top, left, h_end, w_end, at, best_at
    cdef const real* plane = &x[p, 0, 0]
    cdef real v, best
    cdef bint take, saw_nan
    for i in range(g.oh):
        # The window clipped to the image: padding is -inf and never wins,
        # so only the cells inside are scanned. pool_geometry keeps the
        # padding at most half the kernel, so no window is empty.
        top = i * g.sh - g.ph
        h_end = min(top + g.kh, H)
        top = max(top, 0)
        for j in range(g.ow):
            left = j * g.sw - g.pw
            w_end = min(left + g.kw, W)
            left = max(left, 0)
            best_at = top * W + left
            best = plane[best_at]
            saw_nan = False
            for h in range(top, h_end):
                for w in range(left, w_end):
                    at = h * W + w
                    v = plane[at]
                    # Strictly greater, so the first maximum in scan order
                    # wins a tie, as in np.argmax. Written as selects, not an
                    # ``if``, so the compiler emits conditional moves: on
                    # random data a branch here is mispredicted about half
                    # the time, which made this loop 2.5x slower.
                    take = v > best
                    best = v if take else best
                    best_at = at if take else best_at
                    saw_nan = saw_nan | (v != v)
            # A NaN beats every number, as in np.argmax, but ``v > best`` is
            # false for a NaN v. When the window's first cell is a NaN, it
            # already won (nothing is ``> NaN``); otherwise look again.
            if saw_nan and best == best:
                best_at = _first_nan(plane, W, top, h_end, left, w_end)
                best = plane[best_at]
            out[p, i, j] = best
            indices[p, i, j] = best_at


cdef Py_ssize_t _first_nan(
    const real* plane, Py_ssize_t W,
    Py_ssize_t top, Py_ssize_t h_end, Py_ssize_t left, Py_ssize_t w_end,
) noexcept nogil:
    """Where the first NaN of the window is, in scan order; the window has one."""
    cdef Py_ssize_t h, w
    for h in range(top, h_end):
        for w in range(left, w_end):
            if plane[h * W + w] != plane[h * W + w]:
                return h * W + w
    return top * W + left


cdef void _maxpool(
    const real[:, :, ::1] x, real[:, :, ::1] out, int64_t[:, :, ::1] indices, Geometry g
) noexcept nogil:
    cdef Py_ssize_t p
    # Work: every window scans up to KH * KW cells.
    cdef int threads = _threads_for(out.shape[0] * out.shape[1] * out.shape[2] * g.kh * g.kw)
    for p in prange(x.shape[0], schedule="static", num_threads=threads):
        _maxpool_plane(x, out, indices, p, g)


def maxpool2d_forward(x, kernel_size, stride=None, padding=0):
    """2-D max pooling over an NCHW batch, with the position of every maximum.

    Must equal ``reference.maxpool2d_forward`` exactly, ties and NaN
    included: the first maximum in scan order (kernel row, then column)
    wins, and a NaN beats any number. See that docstring for the arguments.

    Loop nest: ``prange`` over the ``N * C`` planes; then output row ``i``,
    output column ``j``, and the window clipped to the image, row ``h`` then
    column ``w``. Memory: allocates only the two outputs; no padded copy.
    A ``x`` that is not C-contiguous is first copied into a contiguous array.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, C, H, W)`` batch, float32 or float64.
    kernel_size : int or (int, int)
        Window height and width.
    stride : int or (int, int), optional
        Step between windows; ``None`` (the default) means ``kernel_size``.
    padding : int or (int, int), optional
        Implicit ``-inf`` border, at most half the kernel size.

    Returns
    -------
    out : numpy.ndarray
        ``(N, C, OH, OW)``, the dtype of ``x``.
    indices : numpy.ndarray
        ``(N, C, OH, OW)`` int64, flat positions ``h * W + w`` in ``[0, H*W)``.
    """
    x = float_array(x, "x", "maxpool2d_forward")
    window = pool_geometry(x.shape, kernel_size, stride, padding, name="maxpool2d_forward")
    planes = window.n * window.c
    x = np.ascontiguousarray(x).reshape(planes, window.h, window.w)
    out = np.empty((planes, window.oh, window.ow), x.dtype)
    indices = np.empty((planes, window.oh, window.ow), np.int64)
    if x.dtype == np.float32:
        _maxpool[float](x, out, indices, _geometry(window))
    else:
        _maxpool[double](x, out, indices, _geometry(window))
    shape = (window.n, window.c, window.oh, window.ow)
    return out.reshape(shape), indices.reshape(shape)


cdef Py_ssize_t _maxpool_backward(
    const real[:, ::1] grad_out, const int64_t[:, ::1] indices, real[:, ::1] grad_x
) noexcept nogil:
    """Scatter-add every plane's gradient; return how many indices were bad."""
    cdef Py_ssize_t p, k, at, size = grad_x.shape[1], bad = 0
    # Work: zero every plane, then scatter every gradient.
    cdef int threads = _threads_for(grad_out.shape[0] * (size + grad_out.shape[1]))
    for p in prange(grad_out.shape[0], schedule="static", num_threads=threads):
        # Each thread zeroes its own planes just before it scatters into
        # them, while they are in its cache; np.zeros would be a separate
        # pass over all of memory, on one thread.
        for k in range(size):
            grad_x[p, k] = 0
        # Output order, so that an element that won several overlapping
        # windows sums their gradients in the order np.add.at does.
        for k in range(grad_out.shape[1]):
            at = indices[p, k]
            # Testing the index costs nothing next to the memory access, and
            # a bad one would write outside the plane. ``bad += 1`` makes
            # ``bad`` an OpenMP sum reduction over the threads.
            if 0 <= at < size:
                grad_x[p, at] += grad_out[p, k]
            else:
                bad += 1
    return bad


def maxpool2d_backward(grad_out, indices, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of :func:`maxpool2d_forward` with respect to its input.

    Must equal ``reference.maxpool2d_backward`` bit for bit: every
    ``grad_out`` element is added to the input element that won its window,
    in output order. See that docstring for the arguments.

    Loop nest: ``prange`` over the ``N * C`` planes; then the ``OH * OW``
    outputs of the plane in order, each scattered into its plane of the
    gradient. An index outside the plane is skipped and counted, and then
    the same ``ValueError`` as the reference's is raised. Memory: allocates
    only the ``x_shape`` result, which each thread zeroes plane by plane.
    Inputs that are not C-contiguous are first copied into contiguous arrays.

    Parameters
    ----------
    grad_out : numpy.ndarray
        ``(N, C, OH, OW)`` float32 or float64, the gradient of ``out``.
    indices : numpy.ndarray
        ``(N, C, OH, OW)`` int64, as :func:`maxpool2d_forward` returned them.
    x_shape : tuple of int
        ``(N, C, H, W)``, the shape of the pooled input.
    kernel_size, stride, padding : int or (int, int)
        The same window as the forward call.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, C-contiguous, of shape ``x_shape`` and the dtype of
        ``grad_out``.
    """
    name = "maxpool2d_backward"
    grad_out = float_array(grad_out, "grad_out", name)
    window = pool_geometry(x_shape, kernel_size, stride, padding, name=name)
    check_shape(grad_out, (window.n, window.c, window.oh, window.ow), "grad_out", window, name=name)
    check_indices(indices, window, name=name)
    planes = window.n * window.c
    grad_out = np.ascontiguousarray(grad_out).reshape(planes, window.oh * window.ow)
    indices = np.ascontiguousarray(indices).reshape(planes, window.oh * window.ow)
    grad_x = np.empty((planes, window.h * window.w), grad_out.dtype)
    if grad_out.dtype == np.float32:
        bad = _maxpool_backward[float](grad_out, indices, grad_x)
    else:
        bad = _maxpool_backward[double](grad_out, indices, grad_x)
    if bad:
        check_index_range(indices, window, name=name)
    return grad_x.reshape(window.n, window.c, window.h, window.w)
