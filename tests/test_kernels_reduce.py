"""The in-place reduction kernels: compiled twin equals the NumPy reference."""

import numpy as np
import pytest

import minidl.kernels as K
from minidl.kernels import reference

DTYPES = [np.float32, np.float64, np.int32, np.int64]
KERNELS = ["add_into", "prod_into", "max_into", "min_into"]
needs_compiled = pytest.mark.skipif(
    "cython" not in K.available(),
    reason="minidl's compiled kernels are not built (see the warning at import)",
)


def rank_like_data(n, dtype, salt):
    """Index- and salt-dependent values, never all equal (a permuted loop must fail)."""
    i = np.arange(n)
    if np.dtype(dtype).kind == "f":
        return ((i * 7919 + salt * 104729) % 1000 / 37.0 - 13.0).astype(dtype)
    return ((i * 7919 + salt * 104729) % 2001 - 1000).astype(dtype)


@needs_compiled
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("n", [0, 1, 7, 1000, 100_003])
def test_compiled_equals_reference(name, dtype, n):
    dst = rank_like_data(n, dtype, 1)
    src = rank_like_data(n, dtype, 2)
    if name == "prod_into" and np.dtype(dtype).kind == "i":
        src = src % 3  # keep integer products from overflowing
    expected = getattr(reference, name)(dst.copy(), src)
    with K.use("cython"):
        got = getattr(K, name)(dst.copy(), src)
    np.testing.assert_array_equal(got, expected)


def test_in_place_and_returns_dst_for_nd_arrays():
    dst = rank_like_data(24, np.float32, 3).reshape(2, 3, 4)
    src = rank_like_data(24, np.float32, 4).reshape(2, 3, 4)
    expected = dst + src
    out = K.add_into(dst, src)
    assert out is dst
    np.testing.assert_array_equal(dst, expected)


@pytest.mark.parametrize("name", ["max_into", "min_into"])
def test_nan_propagates_like_numpy(name):
    dst = np.array([np.nan, 1.0, 2.0, np.nan], dtype=np.float64)
    src = np.array([0.0, np.nan, 1.0, np.nan], dtype=np.float64)
    expected = getattr(reference, name)(dst.copy(), src)
    np.testing.assert_array_equal(getattr(K, name)(dst.copy(), src), expected)


@pytest.mark.parametrize("backend", [pytest.param("cython", marks=needs_compiled), "numpy"])
def test_bad_input_gets_a_clear_error(backend):
    a32 = np.zeros(4, np.float32)
    with K.use(backend):
        with pytest.raises(TypeError, match="dtypes differ: dst is float32, src is float64"):
            K.add_into(a32, np.zeros(4, np.float64))
        with pytest.raises(ValueError, match=r"shapes differ: dst \(4,\), src \(5,\)"):
            K.add_into(a32, np.zeros(5, np.float32))
        readonly = np.zeros(4, np.float32)
        readonly.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            K.add_into(readonly, a32)
        with pytest.raises(ValueError, match="C-contiguous"):
            K.add_into(np.zeros(8, np.float32)[::2], a32)
        with pytest.raises(TypeError, match="unsupported dtype int16"):
            K.add_into(np.zeros(4, np.int16), np.zeros(4, np.int16))


def test_use_is_a_function_and_a_context_manager():
    default = K.available()[0]  # cython where it is built
    assert K.backend() == default
    with K.use("numpy"):
        assert K.backend() == "numpy"
    assert K.backend() == default
    K.use("numpy")
    try:
        assert K.backend() == "numpy"
    finally:
        K.use(default)
    with pytest.raises(ValueError, match="unknown kernel backend 'fortran'"):
        K.use("fortran")


def test_reduce_into_dispatches_by_op_name():
    dst, src = np.array([1, 5], np.int64), np.array([4, 2], np.int64)
    assert K.reduce_into("max", dst.copy(), src).tolist() == [4, 5]
    assert K.reduce_into("prod", dst.copy(), src).tolist() == [4, 10]
    with pytest.raises(ValueError, match="unknown reduction op 'avg'"):
        K.reduce_into("avg", dst, src)
