"""im2col / col2im: the compiled kernels equal the NumPy reference, bit for bit.

Also checks the layout against a convolution written as plain loops, the
adjoint identity that makes col2im the input gradient, the error messages,
and that the thread count never changes a result.
"""

import numpy as np
import pytest

import minidl.kernels as K
from minidl.kernels import reference

compiled = K._im2col  # None where the compiled kernels are not built (no C compiler)
needs_compiled = pytest.mark.skipif(
    compiled is None, reason="minidl's compiled kernels are not built (see the warning at import)"
)
# The backends built here, for the tests that loop over them; as parameters,
# the compiled one is skipped, saying why, where it is not built.
BACKENDS = {"numpy": reference} if compiled is None else {"numpy": reference, "cython": compiled}
BACKEND_NAMES = ["numpy", pytest.param("cython", marks=needs_compiled)]
DTYPES = (np.float32, np.float64)

# (x shape, kernel_size, stride, padding)
CASES = [
    ((2, 3, 7, 7), 3, 1, 0),
    ((2, 3, 7, 7), 3, 1, 1),  # "same" padding
    ((3, 2, 9, 8), 3, 2, 1),  # stride > 1, padding, odd leftovers
    ((2, 4, 6, 6), 6, 1, 0),  # kernel = input: one window
    ((1, 1, 5, 5), 3, 1, 0),  # batch of 1, one channel
    ((2, 3, 8, 10), (2, 5), (1, 3), (1, 2)),  # non-square everything
    ((2, 2, 5, 9), (5, 1), (2, 2), 0),  # tall, thin kernel
    ((2, 3, 4, 4), 1, 1, 0),  # 1x1 kernel: cols is x with axes swapped
    ((2, 2, 3, 3), 5, 1, 1),  # kernel larger than the input, fits the padding
    ((2, 2, 6, 7), 3, 3, 2),  # windows that are mostly padding
    ((5, 1, 28, 28), 5, 1, 2),  # MNIST-sized first layer
]


def ids(case):
    shape, k, s, p = case
    return f"x{'x'.join(map(str, shape))}-k{k}-s{s}-p{p}".replace(" ", "")


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


@pytest.fixture
def threads():
    """Restore the thread count a test changes."""
    before = K.get_num_threads()
    yield
    K.set_num_threads(before)


@needs_compiled
@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_im2col_equals_reference(case, dtype, rng):
    shape, k, s, p = case
    x = rng.standard_normal(shape).astype(dtype)
    expected = reference.im2col(x, k, s, p)
    got = compiled.im2col(x, k, s, p)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


@needs_compiled
@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_col2im_equals_reference_bit_for_bit(case, dtype, rng):
    shape, k, s, p = case
    cols_shape = reference.im2col(np.zeros(shape, dtype), k, s, p).shape
    cols = rng.standard_normal(cols_shape).astype(dtype)
    expected = reference.col2im(cols, shape, k, s, p)
    got = compiled.col2im(cols, shape, k, s, p)
    assert got.shape == shape and got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_im2col_layout_by_hand():
    # Columns are output pixels (n, i, j); rows are (c, kh, kw).
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    for backend in BACKENDS.values():
        cols = backend.im2col(x, 2)
        assert cols.shape == (2 * 2 * 2, 2 * 2 * 2)
        # Output pixel (n=1, i=0, j=1) is column 1*4 + 0*2 + 1 = 5.
        np.testing.assert_array_equal(cols[:, 5], x[1, :, 0:2, 1:3].ravel())
        # Row (c=1, kh=1, kw=0) is channel 1 shifted down by one row.
        np.testing.assert_array_equal(cols[6].reshape(2, 2, 2), x[:, 1, 1:3, 0:2])


def test_im2col_padding_is_zero():
    x = np.ones((1, 1, 2, 2), np.float32)
    for backend in BACKENDS.values():
        cols = backend.im2col(x, 3, 1, 1)  # 2x2 windows of a 4x4 padded image
        # The top-left window sees the image in its bottom-right 2x2 corner.
        np.testing.assert_array_equal(cols[:, 0].reshape(3, 3), [[0, 0, 0], [0, 1, 1], [0, 1, 1]])


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_conv_by_one_matmul_equals_loops(case, rng):
    """The documented use: w.reshape(F, -1) @ cols is a convolution."""
    shape, k, s, p = case
    n, c, h, w = shape
    x = rng.standard_normal(shape)
    g = reference.window_geometry(shape, k, s, p, name="test")
    weight = rng.standard_normal((4, c, g.kh, g.kw))
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    by_loops = np.zeros((n, 4, g.oh, g.ow))
    for i in range(g.oh):
        for j in range(g.ow):
            patch = xp[:, :, i * g.sh : i * g.sh + g.kh, j * g.sw : j * g.sw + g.kw]
            by_loops[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, weight)
    for backend in BACKENDS.values():
        out = weight.reshape(4, -1) @ backend.im2col(x, k, s, p)
        out = out.reshape(4, n, g.oh, g.ow).transpose(1, 0, 2, 3)
        np.testing.assert_allclose(out, by_loops, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_col2im_is_the_adjoint_of_im2col(case, backend, rng):
    # <im2col(x), c> == <x, col2im(c)>: col2im is exactly the input gradient.
    shape, k, s, p = case
    kernels = BACKENDS[backend]
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(kernels.im2col(x, k, s, p).shape)
    lhs = np.vdot(kernels.im2col(x, k, s, p), cols)
    rhs = np.vdot(x, kernels.col2im(cols, shape, k, s, p))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_col2im_of_ones_counts_the_windows_over_each_pixel():
    shape = (1, 1, 4, 4)
    for backend in BACKENDS.values():
        cols = np.ones(backend.im2col(np.zeros(shape), 3).shape)
        counts = backend.col2im(cols, shape, 3)
        np.testing.assert_array_equal(
            counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]
        )


@needs_compiled
@pytest.mark.parametrize(
    "view",
    [
        lambda a: a.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3),  # channels outermost
        lambda a: np.asfortranarray(a),
        lambda a: np.repeat(a, 2, axis=3)[..., ::2],  # every other column of a wider array
    ],
    ids=["transposed", "fortran", "strided"],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_non_contiguous_input(view, dtype, rng):
    x = rng.standard_normal((3, 2, 7, 6)).astype(dtype)
    xv = view(x)
    assert not xv.flags.c_contiguous
    expected = reference.im2col(x, 3, 2, 1)
    np.testing.assert_array_equal(compiled.im2col(xv, 3, 2, 1), expected)
    np.testing.assert_array_equal(reference.im2col(xv, 3, 2, 1), expected)
    cols = np.asfortranarray(rng.standard_normal(expected.shape).astype(dtype))
    np.testing.assert_array_equal(
        compiled.col2im(cols, x.shape, 3, 2, 1), reference.col2im(cols, x.shape, 3, 2, 1)
    )


def test_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    for backend in BACKENDS.values():
        assert backend.im2col(x, 3).shape == (27, 0)
        assert backend.col2im(np.zeros((27, 0), np.float32), x.shape, 3).shape == x.shape


@pytest.mark.parametrize(
    "shape, k, s, p, message",
    [
        ((3, 5, 5), 3, 1, 0, r"expected a 4-D \(N, C, H, W\) input, got shape \(3, 5, 5\)"),
        ((1, 1, 3, 3), 5, 1, 0, r"kernel 5x5 is larger than the padded input 3x3"),
        ((1, 1, 3, 3), (3, 4), 1, 0, r"kernel 3x4 is larger than the padded input 3x3"),
        ((1, 1, 5, 5), 3, 0, 0, r"stride must be positive, got \(0, 0\)"),
        ((1, 1, 5, 5), 3, (1, -2), 0, r"stride must be positive, got \(1, -2\)"),
        ((1, 1, 5, 5), 3, 1, -1, r"padding must be non-negative"),
        ((1, 1, 5, 5), 0, 1, 0, r"kernel_size must be positive"),
        ((1, 1, 5, 5), (3, 3, 3), 1, 0, r"kernel_size must be an int or a pair of ints"),
        ((1, 1, 5, 5), 2.5, 1, 0, r"kernel_size must be an int or a pair of ints"),
        ((1, 1, 0, 5), 1, 1, 0, r"the input image is empty"),
    ],
)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_im2col_bad_arguments(backend, shape, k, s, p, message):
    with pytest.raises(ValueError, match="^im2col: " + message):
        BACKENDS[backend].im2col(np.zeros(shape, np.float32), k, s, p)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex128, bool])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_unsupported_dtype(backend, dtype):
    kernels = BACKENDS[backend]
    message = r"^im2col: unsupported dtype .* for x; expected float32 or float64"
    with pytest.raises(TypeError, match=message):
        kernels.im2col(np.zeros((1, 1, 3, 3), dtype), 2)
    with pytest.raises(TypeError, match=r"^col2im: unsupported dtype .* for cols"):
        kernels.col2im(np.zeros((4, 4), dtype), (1, 1, 3, 3), 2)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_col2im_wrong_cols_shape(backend):
    # (N*OH*OW, C*KH*KW), the layout the other way round, is refused.
    with pytest.raises(ValueError, match=r"^col2im: cols has shape \(8, 12\), expected \(12, 8\)"):
        BACKENDS[backend].col2im(np.zeros((8, 12)), (2, 3, 3, 3), 2)


@needs_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_thread_count_does_not_change_results(dtype, rng, threads):
    # Enough work for several threads: kernels keep small calls on one.
    x = rng.standard_normal((16, 8, 33, 30)).astype(dtype)
    cols = rng.standard_normal(reference.im2col(x, 3, 2, 1).shape).astype(dtype)
    results = []
    for n in (1, 2, 3):
        K.set_num_threads(n)
        assert compiled.get_num_threads() == K.get_num_threads()  # 1 without OpenMP
        results.append((compiled.im2col(x, 3, 2, 1), compiled.col2im(cols, x.shape, 3, 2, 1)))
    for got in results[1:]:
        np.testing.assert_array_equal(got[0], results[0][0])
        np.testing.assert_array_equal(got[1], results[0][1])


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_dispatch_follows_the_active_backend(backend, rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    cols = reference.im2col(x, 3, 1, 1)
    with K.use(backend):
        np.testing.assert_array_equal(K.im2col(x, 3, 1, 1), cols)
        np.testing.assert_array_equal(
            K.col2im(cols, x.shape, 3, 1, 1), reference.col2im(cols, x.shape, 3, 1, 1)
        )
