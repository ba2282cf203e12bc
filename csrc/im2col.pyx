# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""``im2col`` and ``col2im``: the sliding windows behind every convolution.

Reference: ``im2col`` and ``col2im`` in ``minidl/kernels/reference.py``, with
the same names, signatures and results, bit for bit; read them first.
``tests/test_kernels_conv.py`` checks that both backends agree.

Layout: the input is NCHW; ``cols`` is ``(C*KH*KW, N*OH*OW)``, one column
per output pixel, its receptive field flattened in ``(c, kh, kw)`` order. The
reference's ``im2col`` docstring says why this layout makes a convolution's
three matrix products cheapest.

Parallelism: an OpenMP ``prange`` over the images of the batch. The columns
of image ``n`` are ``n*OH*OW`` to ``(n+1)*OH*OW - 1``, so every thread writes
its own columns of ``cols`` (im2col) or its own images (col2im); no two
threads ever write the same memory: no locks, no atomics, and the result does
not depend on the thread count. The number of threads is at most
``_num_threads``, which :func:`minidl.kernels.set_num_threads` sets (it
starts as ``OMP_NUM_THREADS``, or 1 when that is unset: see there why not
the number of cores), and
one per ``GRAIN`` elements of ``cols``, so a small call stays on one thread.

Debugging tip: ``minidl.kernels.use("numpy")`` switches every caller to the
reference without recompiling. To hunt an indexing bug here, set
``boundscheck=True, wraparound=True`` on the first line and reinstall: a bad
memoryview index then raises ``IndexError`` instead of corrupting memory (the
plain pointers of the innermost loops stay unchecked).
"""

import numpy as np

from cython.parallel cimport prange

from minidl.kernels.reference import check_shape, float_array, window_geometry

include "window.pxi"


cdef inline Py_ssize_t _first_at_least(Py_ssize_t v, Py_ssize_t step) noexcept nogil:
    """The smallest ``k >= 0`` with ``k * step >= v``."""
    return 0 if v <= 0 else (v + step - 1) // step


cdef inline void _inside(
    Py_ssize_t offset, Py_ssize_t step, Py_ssize_t size, Py_ssize_t count,
    Py_ssize_t* first, Py_ssize_t* stop,
) noexcept nogil:
    """Which of ``count`` positions ``k * step + offset`` lie in ``[0, size)``.

    They are ``first <= k < stop``; the others fall in the zero padding.
    Working this out once per kernel offset keeps the copy loops free of
    tests.
    """
    first[0] = min(_first_at_least(-offset, step), count)
    stop[0] = max(min(_first_at_least(size - offset, step), count), first[0])


cdef void _im2col_image(
    const real[:, :, :, ::1] x, real[:, ::1] cols, Py_ssize_t n, Geometry g
) noexcept nogil:
    """Fill the ``OH * OW`` columns of image ``n``: zeros, then the pixels inside the image."""
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t c, a, b, i, j, i0, i1, j0, j1, h0, w0
    # Plain pointers in the innermost loops: indexing a memoryview multiplies
    # by its strides on every access, which keeps the compiler from turning
    # the loops into vector loads and stores.
    cdef const real* src
    cdef real* block
    cdef real* dst
    for c in range(C):
        for a in range(g.kh):
            # Output row i reads input row i*sh + h0; rows i0 <= i < i1 are
            # inside the image.
            h0 = a - g.ph
            _inside(h0, g.sh, H, g.oh, &i0, &i1)
            for b in range(g.kw):
                w0 = b - g.pw
                _inside(w0, g.sw, W, g.ow, &j0, &j1)
                # This image's OH * OW entries of row (c, kh, kw): zero them,
                # then copy over those that come from inside the image.
                # Zeroing here, in the thread and just before the copy, beats
                # np.zeros, which is one more pass over all of cols, on one
                # thread, before the kernel starts.
                block = &cols[(c * g.kh + a) * g.kw + b, n * g.oh * g.ow]
                for j in range(g.oh * g.ow):
                    block[j] = 0
                for i in range(i0, i1):
                    # Output row i: OW neighbouring entries, fed from input
                    # row i*sh + h0.
                    dst = block + i * g.ow
                    src = &x[n, c, i * g.sh + h0, 0]
                    # A unit stride gets its own loop: the compiler turns it
                    # into vector loads, which it cannot do for a stride it
                    # only learns at run time.
                    if g.sw == 1:
                        for j in range(j0, j1):
                            dst[j] = src[j + w0]
                    else:
                        for j in range(j0, j1):
                            dst[j] = src[j * g.sw + w0]


cdef void _im2col(const real[:, :, :, ::1] x, real[:, ::1] cols, Geometry g) noexcept nogil:
    cdef Py_ssize_t n
    cdef int threads = _threads_for(cols.shape[0] * cols.shape[1])
    for n in prange(x.shape[0], schedule="static", num_threads=threads):
        _im2col_image(x, cols, n, g)


def im2col(x, kernel_size, stride=1, padding=0):
    """Unfold every receptive field of an NCHW batch into one column of a matrix.

    Must equal ``reference.im2col`` exactly (it only copies); see that
    docstring for the ``(C*KH*KW, N*OH*OW)`` layout and the convolution it
    serves.

    Loop nest: ``prange`` over images ``n``; then channel ``c``, kernel row
    ``kh``, kernel column ``kw`` (together, one row of ``cols``), output row
    ``i``, output column ``j``. The innermost loop copies up to ``OW`` input
    pixels that lie ``sw`` apart into neighbouring entries of ``cols``.

    Memory: allocates only the result; each thread zeroes its images'
    entries and copies in those that lie inside the image, so the padding is
    never built or tested for. A ``x`` that is not C-contiguous (a transposed
    or sliced view) is first copied into a contiguous array, because the
    loops index one dense block.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, C, H, W)`` batch, float32 or float64.
    kernel_size, stride, padding : int or (int, int)
        Window size, step and zero padding (height, width).

    Returns
    -------
    numpy.ndarray
        ``(C*KH*KW, N*OH*OW)``, C-contiguous, the dtype of ``x``.
    """
    x = float_array(x, "x", "im2col")
    window = window_geometry(x.shape, kernel_size, stride, padding, name="im2col")
    x = np.ascontiguousarray(x)
    cols = np.empty((window.c * window.kh * window.kw, window.n * window.oh * window.ow), x.dtype)
    if x.dtype == np.float32:
        _im2col[float](x, cols, _geometry(window))
    else:
        _im2col[double](x, cols, _geometry(window))
    return cols


cdef void _col2im_image(
    const real[:, ::1] cols, real[:, :, :, ::1] out, Py_ssize_t n, Geometry g
) noexcept nogil:
    """Add the ``OH * OW`` columns of image ``n`` back into ``out[n]``.

    The loops of ``_im2col_image`` with the copy turned around into ``+=``.
    An input pixel meets kernel offset ``(kh, kw)`` in row ``(c, kh, kw)``,
    and those rows are visited in increasing ``(kh, kw)`` order, the order in
    which the reference adds them: float addition is not associative, so
    this is what makes the two agree bit for bit.
    """
    cdef Py_ssize_t C = out.shape[1], H = out.shape[2], W = out.shape[3]
    cdef Py_ssize_t c, a, b, i, j, i0, i1, j0, j1, h0, w0
    cdef const real* block
    cdef const real* src
    cdef real* dst = &out[n, 0, 0, 0]
    # The thread zeroes its own image, which then stays in its cache.
    for j in range(C * H * W):
        dst[j] = 0
    for c in range(C):
        for a in range(g.kh):
            h0 = a - g.ph
            _inside(h0, g.sh, H, g.oh, &i0, &i1)
            for b in range(g.kw):
                w0 = b - g.pw
                _inside(w0, g.sw, W, g.ow, &j0, &j1)
                block = &cols[(c * g.kh + a) * g.kw + b, n * g.oh * g.ow]
                for i in range(i0, i1):
                    src = block + i * g.ow
                    dst = &out[n, c, i * g.sh + h0, 0]
                    if g.sw == 1:
                        for j in range(j0, j1):
                            dst[j + w0] += src[j]
                    else:
                        for j in range(j0, j1):
                            dst[j * g.sw + w0] += src[j]


cdef void _col2im(const real[:, ::1] cols, real[:, :, :, ::1] out, Geometry g) noexcept nogil:
    cdef Py_ssize_t n
    cdef int threads = _threads_for(cols.shape[0] * cols.shape[1])
    for n in prange(out.shape[0], schedule="static", num_threads=threads):
        _col2im_image(cols, out, n, g)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """Fold columns back into an NCHW batch, summing where windows overlap.

    Must equal ``reference.col2im`` bit for bit: the adjoint of
    :func:`im2col`, summing every input pixel's contributions in the same
    order (see ``_col2im_image``).

    Loop nest: ``prange`` over images ``n``; then channel ``c``, kernel row
    ``kh``, kernel column ``kw``, output row ``i``, output column ``j``,
    adding each entry of ``cols`` into the input pixel it came from; entries
    that came from the padding are skipped. Each thread adds only into its
    own images.

    Memory: allocates only the ``x_shape`` result, which each thread zeroes
    image by image; no padded buffer. A ``cols`` that is not C-contiguous is
    first copied.

    Parameters
    ----------
    cols : numpy.ndarray
        ``(C*KH*KW, N*OH*OW)`` float32 or float64, as :func:`im2col` lays it
        out.
    x_shape : tuple of int
        ``(N, C, H, W)``, the shape of the input ``cols`` came from.
    kernel_size, stride, padding : int or (int, int)
        The same window as the :func:`im2col` call.

    Returns
    -------
    numpy.ndarray
        C-contiguous array of shape ``x_shape`` and the dtype of ``cols``.
    """
    cols = float_array(cols, "cols", "col2im")
    window = window_geometry(x_shape, kernel_size, stride, padding, name="col2im")
    expected = (window.c * window.kh * window.kw, window.n * window.oh * window.ow)
    check_shape(cols, expected, "cols", window, name="col2im")
    cols = np.ascontiguousarray(cols)
    out = np.empty((window.n, window.c, window.h, window.w), cols.dtype)
    if cols.dtype == np.float32:
        _col2im[float](cols, out, _geometry(window))
    else:
        _col2im[double](cols, out, _geometry(window))
    return out
