"""NumPy reference of every minidl kernel: read these first.

Each function here has the same name, signature and result as its compiled
twin in ``csrc/`` (built into ``minidl.kernels._*``). The tests check that the
two agree; ``minidl.kernels.use("numpy")`` makes every caller use these.
The compiled sliding-window kernels also call this module's argument checks
(:func:`window_geometry`, :func:`float_array`, :func:`check_shape`), so both
backends reject a bad call with the same message.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

REDUCE_DTYPES = (np.float32, np.float64, np.int32, np.int64)


def _check_reduce(dst: np.ndarray, src: np.ndarray, name: str) -> None:
    """The same checks, in the same words, as the compiled reductions."""
    if dst.dtype != src.dtype:
        raise TypeError(f"{name}: dtypes differ: dst is {dst.dtype}, src is {src.dtype}")
    if dst.shape != src.shape:
        raise ValueError(f"{name}: shapes differ: dst {dst.shape}, src {src.shape}")
    if not dst.flags.writeable:
        raise ValueError(f"{name}: dst is read-only")
    if not (dst.flags.c_contiguous and src.flags.c_contiguous):
        raise ValueError(f"{name}: dst and src must be C-contiguous (use np.ascontiguousarray)")
    if dst.dtype not in REDUCE_DTYPES:
        raise TypeError(
            f"{name}: unsupported dtype {dst.dtype}; expected float32, float64, int32 or int64"
        )


def add_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Add ``src`` into ``dst`` in place and return ``dst``.

    ``dst[i] = dst[i] + src[i]`` for every element; nothing is allocated.

    Parameters
    ----------
    dst : numpy.ndarray
        Written in place. C-contiguous, float32, float64, int32 or int64.
    src : numpy.ndarray
        Same shape and dtype as ``dst``; only read.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([1.0, 2.0], dtype=np.float32)
    >>> add_into(a, np.array([10.0, 20.0], dtype=np.float32))
    array([11., 22.], dtype=float32)
    """
    _check_reduce(dst, src, "add_into")
    return np.add(dst, src, out=dst)


def prod_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Multiply ``dst`` by ``src`` in place and return ``dst`` (see :func:`add_into`)."""
    _check_reduce(dst, src, "prod_into")
    return np.multiply(dst, src, out=dst)


def max_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst = maximum(dst, src)`` in place, NaN propagating (see :func:`add_into`)."""
    _check_reduce(dst, src, "max_into")
    return np.maximum(dst, src, out=dst)


def min_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst = minimum(dst, src)`` in place, NaN propagating (see :func:`add_into`)."""
    _check_reduce(dst, src, "min_into")
    return np.minimum(dst, src, out=dst)


# ---------------------------------------------------------------------------
# Sliding windows over NCHW images: im2col / col2im and pooling.
#
# The public helpers here (window_geometry, pool_geometry, float_array,
# check_shape, check_indices, check_index_range) are the argument checks both
# backends share, so a bad call fails with the same words whichever backend
# runs it. Every kernel takes ``kernel_size``, ``stride`` and ``padding`` as
# an int (the same for height and width) or a pair ``(height, width)``, as
# PyTorch's layers do.
# ---------------------------------------------------------------------------

IntPair = int | tuple[int, int]
FLOAT_DTYPES = (np.float32, np.float64)


class Window(NamedTuple):
    """The geometry of a 2-D sliding window over an ``(N, C, H, W)`` input.

    Attributes
    ----------
    n, c, h, w : int
        The input's batch size, channels, height and width.
    kh, kw : int
        Kernel height and width.
    sh, sw : int
        Vertical and horizontal stride.
    ph, pw : int
        Zero rows added above and below, zero columns left and right.
    oh, ow : int
        Output height and width: ``oh = (h + 2 * ph - kh) // sh + 1``, and the
        same for ``ow``.
    """

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    oh: int
    ow: int


def _pair(value: IntPair, what: str, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; anything else is an error."""
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def window_geometry(
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    *,
    name: str,
) -> Window:
    """Check a sliding-window call and work out its output size.

    Parameters
    ----------
    x_shape : tuple of int
        Shape of the NCHW input the window slides over.
    kernel_size, stride, padding : int or (int, int)
        Window size, step and zero padding; an int means the same for height
        and width.
    name : str
        The kernel's name, used to start every error message.

    Returns
    -------
    Window
        Input, kernel, stride, padding and output sizes.

    Raises
    ------
    ValueError
        If ``x_shape`` is not 4-D or has an empty image, the kernel or stride
        is not positive, the padding is negative, or the kernel is larger than
        the padded input.

    Examples
    --------
    >>> window_geometry((64, 1, 28, 28), 5, 1, 2, name="im2col").oh
    28
    """
    if len(x_shape) != 4:
        raise ValueError(f"{name}: expected a 4-D (N, C, H, W) input, got shape {tuple(x_shape)}")
    n, c, h, w = (int(d) for d in x_shape)
    if h < 1 or w < 1:
        raise ValueError(f"{name}: the input image is empty: shape {tuple(x_shape)}")
    kh, kw = _pair(kernel_size, "kernel_size", name)
    sh, sw = _pair(stride, "stride", name)
    ph, pw = _pair(padding, "padding", name)
    if kh < 1 or kw < 1:
        raise ValueError(f"{name}: kernel_size must be positive, got {(kh, kw)}")
    if sh < 1 or sw < 1:
        raise ValueError(f"{name}: stride must be positive, got {(sh, sw)}")
    if ph < 0 or pw < 0:
        raise ValueError(f"{name}: padding must be non-negative, got {(ph, pw)}")
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(
            f"{name}: kernel {kh}x{kw} is larger than the padded input "
            f"{h + 2 * ph}x{w + 2 * pw} (input {h}x{w}, padding {(ph, pw)})"
        )
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    return Window(n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow)


def float_array(x: np.ndarray, what: str, name: str) -> np.ndarray:
    """Return ``x`` as an array, or raise if it is not float32 or float64.

    Parameters
    ----------
    x : array_like
        The argument to check.
    what : str
        What the argument is (``"x"``, ``"cols"``, ...), for the message.
    name : str
        The kernel's name, used to start the message.

    Raises
    ------
    TypeError
        If the dtype is neither float32 nor float64.
    """
    x = np.asarray(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: unsupported dtype {x.dtype} for {what}; expected float32 or float64"
        )
    return x


def check_shape(
    array: np.ndarray, expected: tuple[int, ...], what: str, g: Window, *, name: str
) -> None:
    """Raise unless ``array`` has the shape the window ``g`` implies.

    Parameters
    ----------
    array : numpy.ndarray
        The argument to check.
    expected : tuple of int
        The shape it must have.
    what : str
        What the argument is (``"cols"``, ``"grad_out"``, ...), for the message.
    g : Window
        The window the shape follows from, quoted in the message.
    name : str
        The kernel's name, used to start the message.

    Raises
    ------
    ValueError
        If ``array.shape != expected``.
    """
    if array.shape != expected:
        raise ValueError(
            f"{name}: {what} has shape {array.shape}, expected {expected} for input "
            f"{(g.n, g.c, g.h, g.w)} with a {g.kh}x{g.kw} window, stride {(g.sh, g.sw)} "
            f"and padding {(g.ph, g.pw)}"
        )


def _pad(x: np.ndarray, g: Window, value: float = 0.0) -> np.ndarray:
    """``x`` with ``g.ph`` rows and ``g.pw`` columns of ``value`` on every side."""
    return np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)), constant_values=value)


def _windows(xp: np.ndarray, g: Window) -> np.ndarray:
    """The ``(N, C, OH, OW, KH, KW)`` view of every window of the padded ``xp``.

    No copy: ``windows[n, c, i, j]`` is the ``KH x KW`` patch of ``xp[n, c]``
    whose top-left corner is at ``(i * sh, j * sw)``.
    """
    every = sliding_window_view(xp, (g.kh, g.kw), axis=(2, 3))
    return every[:, :, :: g.sh, :: g.sw]


def im2col(
    x: np.ndarray, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0
) -> np.ndarray:
    """Unfold every receptive field of an NCHW batch into one column of a matrix.

    Column ``(n * OH + i) * OW + j`` of the result is the zero-padded patch
    ``x[n, :, i*sh - ph : i*sh - ph + KH, j*sw - pw : j*sw - pw + KW]``,
    flattened in ``(c, kh, kw)`` order. A 2-D convolution with the weight
    ``w`` of shape ``(F, C, KH, KW)`` is then one matrix product::

        out = w.reshape(F, -1) @ im2col(x, (KH, KW), s, p)     # (F, N*OH*OW)
        out = out.reshape(F, N, OH, OW).transpose(1, 0, 2, 3)  # NCHW

    Why columns are output pixels, ``(C*KH*KW, N*OH*OW)``:

    - row ``(c, kh, kw)`` of ``cols`` is channel ``c`` of the padded batch
      shifted by ``(kh, kw)`` and subsampled by the stride, so building it
      copies runs of ``OW`` neighbouring pixels. The other layout, one row
      per output pixel, copies runs of only ``KW`` pixels, too short to
      vectorise. Measured on course-sized shapes (batch 64, one thread),
      building that layout is 2-3x slower in NumPy, and a whole convolution
      (forward and both gradients) is 1.1-2x slower with the NumPy kernels
      and up to 1.35x slower with the compiled ones;
    - the three products of a convolution are each one BLAS call that never
      copies the large ``cols``: the forward above, the weight gradient
      ``g @ cols.T`` and the input gradient
      ``col2im(w.reshape(F, -1).T @ g, ...)``, where ``g`` is the output
      gradient as ``(F, N*OH*OW)`` (BLAS reads ``cols.T`` in place);
    - ``w.reshape(F, -1)`` is a free view of the weight, in the same
      ``(c, kh, kw)`` order as the rows. Only the output and its gradient,
      ``F / (C*KH*KW)`` the size of ``cols``, move between NCHW and
      ``(F, N*OH*OW)``.

    Memory: allocates a zero-padded copy of ``x`` and the
    ``(C*KH*KW, N*OH*OW)`` result, about ``KH*KW / (sh*sw)`` times the size
    of ``x``; reads ``x`` with any strides.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, C, H, W)`` batch, float32 or float64.
    kernel_size, stride, padding : int or (int, int)
        Window size, step and zero padding (height, width).

    Returns
    -------
    numpy.ndarray
        ``cols``, C-contiguous, of shape ``(C*KH*KW, N*OH*OW)`` and the dtype
        of ``x``.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> im2col(x, 3)
    array([[ 0.,  1.,  4.,  5.],
           [ 1.,  2.,  5.,  6.],
           [ 2.,  3.,  6.,  7.],
           [ 4.,  5.,  8.,  9.],
           [ 5.,  6.,  9., 10.],
           [ 6.,  7., 10., 11.],
           [ 8.,  9., 12., 13.],
           [ 9., 10., 13., 14.],
           [10., 11., 14., 15.]])
    """
    x = float_array(x, "x", "im2col")
    g = window_geometry(x.shape, kernel_size, stride, padding, name="im2col")
    # BEGIN SOLUTION im2col
    # copy each padded, strided window into a column, rows in (c, kh, kw) order
    windows = _windows(_pad(x, g), g)  # (N, C, OH, OW, KH, KW), a view
    # Bring the window's own axes (C, KH, KW) first; reshape then copies once.
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(g.c * g.kh * g.kw, g.n * g.oh * g.ow)
    # END SOLUTION


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """Fold columns back into an NCHW batch, summing where windows overlap.

    The adjoint of :func:`im2col`: for every ``x`` and ``cols``,
    ``<im2col(x), cols> == <x, col2im(cols, x.shape, ...)>``. A convolution's
    input gradient is ``col2im(w.reshape(F, -1).T @ g, x.shape, ...)``.
    Entries that ``im2col`` took from the zero padding are dropped.

    Loop nest: one vectorised ``+=`` per kernel offset ``(kh, kw)``, in that
    order, adding rows ``(:, kh, kw)`` of ``cols`` into the input pixels they
    came from. Each input pixel therefore sums its contributions in
    ``(kh, kw)`` order, starting from zero; the compiled kernel keeps that
    order, so the two agree bit for bit.

    Memory: allocates a zeroed padded ``(N, C, H + 2*ph, W + 2*pw)`` buffer
    and the cropped result.

    Parameters
    ----------
    cols : numpy.ndarray
        ``(C*KH*KW, N*OH*OW)`` float32 or float64, laid out as :func:`im2col`
        returns it.
    x_shape : tuple of int
        ``(N, C, H, W)``, the shape of the input ``cols`` came from.
    kernel_size, stride, padding : int or (int, int)
        The same window as the :func:`im2col` call.

    Returns
    -------
    numpy.ndarray
        C-contiguous array of shape ``x_shape`` and the dtype of ``cols``.

    Raises
    ------
    ValueError
        If ``cols`` does not have the shape ``im2col`` gives for ``x_shape``.
    """
    cols = float_array(cols, "cols", "col2im")
    g = window_geometry(x_shape, kernel_size, stride, padding, name="col2im")
    check_shape(cols, (g.c * g.kh * g.kw, g.n * g.oh * g.ow), "cols", g, name="col2im")
    # BEGIN SOLUTION col2im
    # add each row (c, kh, kw) of cols back into the padded pixels it came from, then crop
    xp = np.zeros((g.n, g.c, g.h + 2 * g.ph, g.w + 2 * g.pw), dtype=cols.dtype)
    shifted = cols.reshape(g.c, g.kh, g.kw, g.n, g.oh, g.ow)
    for kh in range(g.kh):
        for kw in range(g.kw):
            rows = slice(kh, kh + g.sh * g.oh, g.sh)
            columns = slice(kw, kw + g.sw * g.ow, g.sw)
            xp[:, :, rows, columns] += shifted[:, kh, kw].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(xp[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w])
    # END SOLUTION


def maxpool2d_forward(
    x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling over an NCHW batch, with the position of every maximum.

    ``out[n, c, i, j]`` is the largest element of the window of ``x[n, c]``
    whose top-left corner is at ``(i*sh - ph, j*sw - pw)``; padding counts as
    ``-inf``, so it never wins. ``indices[n, c, i, j]`` is where that element
    is, as a flat index ``h * W + w`` into the ``H x W`` image of ``x[n, c]``
    (PyTorch's ``return_indices`` convention).

    Ties: the first maximum in scan order (window row ``kh``, then column
    ``kw``) wins, as in ``np.argmax``. A NaN counts as larger than any
    number, as in ``np.argmax`` and ``np.max``: a window holding one pools to
    NaN, and its first NaN wins. Both backends follow this rule, and
    :func:`maxpool2d_backward` sends the whole gradient to that one element.

    Memory: allocates a ``-inf``-padded copy of ``x``, a copy of all its
    windows side by side, ``(N, C, OH, OW, KH*KW)``, and the two outputs.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, C, H, W)`` batch, float32 or float64.
    kernel_size : int or (int, int)
        Window height and width.
    stride : int or (int, int), optional
        Step between windows; ``None`` (the default) means ``kernel_size``.
    padding : int or (int, int), optional
        Implicit ``-inf`` rows and columns on every side; at most half the
        kernel size, so that every window holds at least one input element.

    Returns
    -------
    out : numpy.ndarray
        ``(N, C, OH, OW)``, the dtype of ``x``.
    indices : numpy.ndarray
        ``(N, C, OH, OW)`` int64, each in ``[0, H*W)``.

    Raises
    ------
    ValueError
        For a bad window (see :func:`window_geometry`) or padding larger than
        half the kernel.

    Examples
    --------
    >>> x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    >>> out, indices = maxpool2d_forward(x, 2)
    >>> out.item(), indices.item()
    (3.0, 1)
    """
    x = float_array(x, "x", "maxpool2d_forward")
    g = pool_geometry(x.shape, kernel_size, stride, padding, name="maxpool2d_forward")
    # BEGIN SOLUTION maxpool2d
    # the maximum of each window (padding is -inf) and its flat index h * W + w
    windows = _windows(_pad(x, g, -np.inf), g)  # (N, C, OH, OW, KH, KW), a view
    flat = windows.reshape(g.n, g.c, g.oh, g.ow, g.kh * g.kw)  # copies once
    first = np.argmax(flat, axis=-1)  # the first maximum, or the first NaN
    out = np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]
    # cell[i, j, k] is the flat index h * W + w of cell k of window (i, j) in
    # the input image, or H * W (one past the end) for a padding cell.
    end = g.h * g.w
    image = np.arange(end, dtype=np.int64).reshape(1, 1, g.h, g.w)
    cell = _windows(_pad(image, g, end), g).reshape(g.oh, g.ow, g.kh * g.kw)
    indices = cell[np.arange(g.oh)[:, None], np.arange(g.ow), first]
    # A window whose input cells are all -inf ties with its -inf padding, and
    # argmax may pick a padding cell; take the window's first input cell.
    indices = np.where(indices == end, cell.min(axis=-1), indices)
    return out, indices
    # END SOLUTION


def maxpool2d_backward(
    grad_out: np.ndarray,
    indices: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> np.ndarray:
    """Gradient of :func:`maxpool2d_forward` with respect to its input.

    Every ``grad_out[n, c, i, j]`` is added to the one input element that won
    its window, ``grad_x[n, c].flat[indices[n, c, i, j]]``. Windows that
    overlap (stride smaller than the kernel) can send several gradients to one
    element; they are summed in output order (row ``i``, then column ``j``),
    and the compiled kernel keeps that order, so the two agree bit for bit.

    Memory: allocates the zeroed ``(N, C, H, W)`` result; ``np.add.at``
    scatters into it in place (a plain ``grad_x[idx] += g`` would keep only
    one of several updates to the same element).

    Parameters
    ----------
    grad_out : numpy.ndarray
        ``(N, C, OH, OW)`` float32 or float64, the gradient of ``out``.
    indices : numpy.ndarray
        ``(N, C, OH, OW)`` int64, as :func:`maxpool2d_forward` returned them.
    x_shape : tuple of int
        ``(N, C, H, W)``, the shape of the pooled input.
    kernel_size, stride, padding : int or (int, int)
        The same window as the forward call; they fix ``OH`` and ``OW``.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, C-contiguous, of shape ``x_shape`` and the dtype of
        ``grad_out``.

    Raises
    ------
    ValueError
        If ``grad_out`` or ``indices`` do not have the pooled shape, or an
        index lies outside ``[0, H*W)``.
    TypeError
        If ``indices`` is not int64.
    """
    name = "maxpool2d_backward"
    grad_out = float_array(grad_out, "grad_out", name)
    g = pool_geometry(x_shape, kernel_size, stride, padding, name=name)
    check_shape(grad_out, (g.n, g.c, g.oh, g.ow), "grad_out", g, name=name)
    check_indices(indices, g, name=name)
    check_index_range(indices, g, name=name)
    # BEGIN SOLUTION maxpool2d
    # add each grad_out element into the input element that won its window
    planes = g.n * g.c
    grad_x = np.zeros((planes, g.h * g.w), dtype=grad_out.dtype)
    # One flat index per output element: plane p's image starts at p * H*W.
    flat = (np.arange(planes)[:, None] * (g.h * g.w) + indices.reshape(planes, -1)).ravel()
    np.add.at(grad_x.ravel(), flat, grad_out.ravel())
    return grad_x.reshape(g.n, g.c, g.h, g.w)
    # END SOLUTION


def pool_geometry(
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: IntPair,
    *,
    name: str,
) -> Window:
    """:func:`window_geometry` for pooling: the stride defaults to the kernel.

    Parameters
    ----------
    x_shape : tuple of int
        Shape of the NCHW input.
    kernel_size, padding : int or (int, int)
        Window size and padding.
    stride : int or (int, int) or None
        Step between windows; ``None`` means ``kernel_size``.
    name : str
        The kernel's name, used to start every error message.

    Returns
    -------
    Window
        Input, kernel, stride, padding and output sizes.

    Raises
    ------
    ValueError
        As :func:`window_geometry`, and if the padding is more than half the
        kernel, which would let a window hold nothing but padding.
    """
    g = window_geometry(
        x_shape, kernel_size, kernel_size if stride is None else stride, padding, name=name
    )
    if 2 * g.ph > g.kh or 2 * g.pw > g.kw:
        raise ValueError(
            f"{name}: padding {(g.ph, g.pw)} is more than half the kernel {g.kh}x{g.kw}; "
            "a window could then hold nothing but padding"
        )
    return g


def check_indices(indices: np.ndarray, g: Window, *, name: str) -> None:
    """Raise unless ``indices`` has the dtype and shape of argmax indices for ``g``.

    Parameters
    ----------
    indices : numpy.ndarray
        Flat positions ``h * W + w``, one per pooled element.
    g : Window
        The pooling window; fixes the expected shape.
    name : str
        The kernel's name, used to start the message.

    Raises
    ------
    TypeError
        If ``indices`` is not an int64 array.
    ValueError
        If its shape is not ``(N, C, OH, OW)``.
    """
    if not isinstance(indices, np.ndarray) or indices.dtype != np.int64:
        raise TypeError(
            f"{name}: indices must be an int64 array, as maxpool2d_forward returns them; "
            f"got {getattr(indices, 'dtype', type(indices).__name__)}"
        )
    check_shape(indices, (g.n, g.c, g.oh, g.ow), "indices", g, name=name)


def check_index_range(indices: np.ndarray, g: Window, *, name: str) -> None:
    """Raise unless every index lies in ``[0, H*W)``, inside its own image.

    Scattering through a bad index would write into another image (NumPy
    wraps negative indices) or outside the array.

    Parameters
    ----------
    indices : numpy.ndarray
        Flat positions ``h * W + w``.
    g : Window
        The pooling window; fixes ``H`` and ``W``.
    name : str
        The kernel's name, used to start the message.

    Raises
    ------
    ValueError
        If an index is negative or at least ``H*W``.
    """
    if indices.size and (indices.min() < 0 or indices.max() >= g.h * g.w):
        raise ValueError(
            f"{name}: indices must lie in [0, H*W) = [0, {g.h * g.w}); "
            f"got values from {indices.min()} to {indices.max()}"
        )
