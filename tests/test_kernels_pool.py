"""maxpool2d_forward / maxpool2d_backward: compiled kernels equal the reference.

Both backends must agree bit for bit on the pooled values, on which element
wins a window (ties and NaN included) and on the scattered gradient.
"""

import numpy as np
import pytest

import minidl.kernels as K
from minidl.kernels import reference

compiled = K._pool  # None where the compiled kernels are not built (no C compiler)
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
    ((2, 3, 8, 8), 2, None, 0),  # the usual 2x2 pool
    ((2, 3, 7, 7), 2, 2, 0),  # last row and column left over
    ((2, 3, 9, 9), 3, 2, 1),  # overlapping windows and padding
    ((3, 2, 6, 6), 3, 1, 1),  # heavy overlap: one element wins many windows
    ((2, 2, 5, 5), 5, None, 0),  # kernel = input: global max pool
    ((1, 1, 4, 4), 2, None, 0),  # batch of 1
    ((2, 3, 8, 10), (2, 4), (1, 3), (1, 2)),  # non-square everything
    ((2, 2, 5, 7), (3, 1), (2, 1), (1, 0)),
    ((4, 6, 28, 28), 2, None, 0),  # LeNet-sized
]


def ids(case):
    shape, k, s, p = case
    return f"x{'x'.join(map(str, shape))}-k{k}-s{s}-p{p}".replace(" ", "")


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.fixture
def threads():
    """Restore the thread count a test changes."""
    before = K.get_num_threads()
    yield
    K.set_num_threads(before)


def assert_same_pool(x, k, s, p):
    out, indices = reference.maxpool2d_forward(x, k, s, p)
    got_out, got_indices = compiled.maxpool2d_forward(x, k, s, p)
    assert got_out.dtype == x.dtype and got_indices.dtype == np.int64
    np.testing.assert_array_equal(got_out, out)
    np.testing.assert_array_equal(got_indices, indices)
    return out, indices


@needs_compiled
@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_forward_equals_reference(case, dtype, rng):
    shape, k, s, p = case
    assert_same_pool(rng.standard_normal(shape).astype(dtype), k, s, p)


@needs_compiled
@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_forward_equals_reference_with_many_ties(case, dtype, rng):
    # Three distinct values: nearly every window holds a tie for its max.
    shape, k, s, p = case
    assert_same_pool(rng.integers(0, 3, shape).astype(dtype), k, s, p)


@needs_compiled
@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_backward_equals_reference_bit_for_bit(case, dtype, rng):
    shape, k, s, p = case
    x = rng.integers(0, 4, shape).astype(dtype)  # ties, and overlapping winners
    _, indices = reference.maxpool2d_forward(x, k, s, p)
    grad_out = rng.standard_normal(indices.shape).astype(dtype)
    expected = reference.maxpool2d_backward(grad_out, indices, shape, k, s, p)
    got = compiled.maxpool2d_backward(grad_out, indices, shape, k, s, p)
    assert got.shape == shape and got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_forward_by_hand(backend):
    x = np.array([[[[1, 5, 2, 0], [3, 4, 8, 1], [0, 9, 1, 1], [2, 2, 1, 7]]]], np.float32)
    out, indices = BACKENDS[backend].maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(out[0, 0], [[5, 8], [9, 7]])
    # Flat positions h * W + w in the 4x4 image.
    np.testing.assert_array_equal(indices[0, 0], [[1, 6], [9, 15]])


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_tie_goes_to_the_first_cell_in_scan_order(backend):
    kernels = BACKENDS[backend]
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    assert kernels.maxpool2d_forward(x, 2)[1].item() == 1  # (0, 1) before (1, 0)
    _, indices = kernels.maxpool2d_forward(np.zeros((1, 1, 4, 4)), 2)
    np.testing.assert_array_equal(indices[0, 0], [[0, 2], [8, 10]])  # each top-left


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_nan_wins_and_the_first_nan_wins(backend):
    kernels = BACKENDS[backend]
    x = np.array([[[[1.0, 2.0, np.nan, 0.0], [np.nan, 5.0, 3.0, np.nan]]]])
    out, indices = kernels.maxpool2d_forward(x, 2)
    assert np.isnan(out).all()
    np.testing.assert_array_equal(indices[0, 0], [[4, 2]])


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_padding_never_wins_even_against_minus_infinity(backend):
    x = np.full((1, 1, 3, 3), -np.inf)
    out, indices = BACKENDS[backend].maxpool2d_forward(x, 2, 1, 1)
    assert (out == -np.inf).all()
    # Every window's first cell inside the image.
    np.testing.assert_array_equal(
        indices[0, 0], [[0, 0, 1, 2], [0, 0, 1, 2], [3, 3, 4, 5], [6, 6, 7, 8]]
    )


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_backward_sums_where_one_element_wins_many_windows(backend):
    kernels = BACKENDS[backend]
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the centre wins all four 2x2 windows
    _, indices = kernels.maxpool2d_forward(x, 2, 1)
    grad_out = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    grad_x = kernels.maxpool2d_backward(grad_out, indices, x.shape, 2, 1)
    expected = np.zeros((3, 3))
    expected[1, 1] = 10.0
    np.testing.assert_array_equal(grad_x[0, 0], expected)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_backward_is_the_gradient_of_the_sum_of_outputs(backend, rng):
    # d/dx sum(g * maxpool(x)) by finite differences, for distinct inputs.
    kernels = BACKENDS[backend]
    x = rng.permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7).astype(np.float64)
    out, indices = kernels.maxpool2d_forward(x, 3, 2, 1)
    g = rng.standard_normal(out.shape)
    grad_x = kernels.maxpool2d_backward(g, indices, x.shape, 3, 2, 1)
    numeric = np.zeros_like(x)
    for at in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[at] = 0.25  # inputs are integers, so this never changes a winner
        up = np.vdot(g, kernels.maxpool2d_forward(x + step, 3, 2, 1)[0])
        down = np.vdot(g, kernels.maxpool2d_forward(x - step, 3, 2, 1)[0])
        numeric[at] = (up - down) / 0.5
    np.testing.assert_allclose(grad_x, numeric, rtol=1e-12, atol=1e-12)


@needs_compiled
@pytest.mark.parametrize(
    "view",
    [
        lambda a: np.asfortranarray(a),
        lambda a: np.repeat(a, 2, axis=2)[:, :, ::2],
    ],
    ids=["fortran", "strided"],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_non_contiguous_input(view, dtype, rng):
    x = rng.standard_normal((3, 2, 7, 6)).astype(dtype)
    xv = view(x)
    assert not xv.flags.c_contiguous
    out, indices = reference.maxpool2d_forward(x, 3, 2, 1)
    for backend in BACKENDS.values():
        got_out, got_indices = backend.maxpool2d_forward(xv, 3, 2, 1)
        np.testing.assert_array_equal(got_out, out)
        np.testing.assert_array_equal(got_indices, indices)
    grad_out = np.asfortranarray(rng.standard_normal(out.shape).astype(dtype))
    indices = np.asfortranarray(indices)
    np.testing.assert_array_equal(
        compiled.maxpool2d_backward(grad_out, indices, x.shape, 3, 2, 1),
        reference.maxpool2d_backward(grad_out, indices, x.shape, 3, 2, 1),
    )


@pytest.mark.parametrize(
    "shape, k, s, p, message",
    [
        ((2, 8, 8), 2, None, 0, r"expected a 4-D \(N, C, H, W\) input, got shape \(2, 8, 8\)"),
        ((1, 1, 3, 3), 4, None, 0, r"kernel 4x4 is larger than the padded input 3x3"),
        ((1, 1, 8, 8), 2, 0, 0, r"stride must be positive, got \(0, 0\)"),
        ((1, 1, 8, 8), 3, 1, 2, r"padding \(2, 2\) is more than half the kernel 3x3"),
        ((1, 1, 8, 8), (2, 4), 1, (1, 3), r"padding \(1, 3\) is more than half the kernel 2x4"),
    ],
)
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_forward_bad_arguments(backend, shape, k, s, p, message):
    with pytest.raises(ValueError, match="^maxpool2d_forward: " + message):
        BACKENDS[backend].maxpool2d_forward(np.zeros(shape, np.float32), k, s, p)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_forward_unsupported_dtype(backend):
    with pytest.raises(TypeError, match=r"^maxpool2d_forward: unsupported dtype int64 for x"):
        BACKENDS[backend].maxpool2d_forward(np.zeros((1, 1, 4, 4), np.int64), 2)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_backward_bad_arguments(backend):
    backward = BACKENDS[backend].maxpool2d_backward
    shape = (2, 3, 4, 4)
    grad_out = np.ones((2, 3, 2, 2))
    indices = np.zeros((2, 3, 2, 2), np.int64)
    start = "^maxpool2d_backward: "
    wrong_shape = r"grad_out has shape \(2, 3, 3, 3\), expected \(2, 3, 2, 2\)"
    with pytest.raises(ValueError, match=start + wrong_shape):
        backward(np.ones((2, 3, 3, 3)), indices, shape, 2)
    with pytest.raises(TypeError, match=start + "indices must be an int64 array"):
        backward(grad_out, indices.astype(np.int32), shape, 2)
    with pytest.raises(ValueError, match=start + r"indices has shape \(2, 3, 4\)"):
        backward(grad_out, np.zeros((2, 3, 4), np.int64), shape, 2)
    with pytest.raises(TypeError, match=start + "unsupported dtype int64 for grad_out"):
        backward(grad_out.astype(np.int64), indices, shape, 2)
    for bad in (-1, 16):  # a negative index would wrap into another image in NumPy
        wrong = indices.copy()
        wrong[1, 2, 1, 0] = bad
        out_of_range = r"indices must lie in \[0, H\*W\) = \[0, 16\)"
        with pytest.raises(ValueError, match=start + out_of_range):
            backward(grad_out, wrong, shape, 2)


@needs_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_thread_count_does_not_change_results(dtype, rng, threads):
    # Enough work for several threads: kernels keep small calls on one.
    x = rng.integers(0, 5, (16, 8, 64, 63)).astype(dtype)
    grad_out = rng.standard_normal((16, 8, 32, 32)).astype(dtype)
    results = []
    for n in (1, 2, 3):
        K.set_num_threads(n)
        assert compiled.get_num_threads() == K.get_num_threads()  # 1 without OpenMP
        out, indices = compiled.maxpool2d_forward(x, 3, 2, 1)
        grad_x = compiled.maxpool2d_backward(grad_out, indices, x.shape, 3, 2, 1)
        results.append((out, indices, grad_x))
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_dispatch_follows_the_active_backend(backend, rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    out, indices = reference.maxpool2d_forward(x, 2)
    grad_x = reference.maxpool2d_backward(out, indices, x.shape, 2)
    with K.use(backend):
        got_out, got_indices = K.maxpool2d_forward(x, 2)
        np.testing.assert_array_equal(got_out, out)
        np.testing.assert_array_equal(got_indices, indices)
        np.testing.assert_array_equal(K.maxpool2d_backward(out, indices, x.shape, 2), grad_x)


@needs_compiled
def test_bad_index_is_caught_on_every_thread(rng, threads):
    # Large enough to run on several threads; the bad index sits in the last
    # planes, which the last thread handles.
    shape = (16, 8, 64, 64)
    grad_out = rng.standard_normal((16, 8, 32, 32))
    indices = rng.integers(0, 64 * 64, grad_out.shape)
    indices[-1, -1, -1, -1] = 64 * 64
    K.set_num_threads(2)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\) = \[0, 4096\)"):
        compiled.maxpool2d_backward(grad_out, indices, shape, 2)
