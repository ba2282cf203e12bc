"""minidl.kernels.set_num_threads / get_num_threads: the OpenMP thread count."""

import os
import subprocess
import sys

import pytest

import minidl.kernels as K

needs_openmp = pytest.mark.skipif(
    not K.has_openmp(),
    reason="minidl's compiled kernels are not built with OpenMP "
    "(no C compiler, or one without -fopenmp, at install time)",
)


@pytest.fixture
def threads():
    """Restore the thread count a test changes."""
    before = K.get_num_threads()
    yield
    K.set_num_threads(before)


@needs_openmp
def test_set_reaches_every_threaded_module(threads):
    for n in (1, 3, 2):
        K.set_num_threads(n)
        assert K.get_num_threads() == n
        assert K._im2col.get_num_threads() == n
        assert K._pool.get_num_threads() == n


@pytest.mark.parametrize(
    "n, error",
    [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)],
)
def test_bad_thread_count(n, error, threads):
    before = K.get_num_threads()
    with pytest.raises(error, match="^set_num_threads: n must be"):
        K.set_num_threads(n)
    assert K.get_num_threads() == before


@needs_openmp
@pytest.mark.parametrize("value", ["1", "3"])
def test_default_follows_omp_num_threads(value):
    env = {**os.environ, "OMP_NUM_THREADS": value}
    code = "import minidl.kernels as K; print(K.get_num_threads())"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == value


@needs_openmp
def test_default_is_one_thread_without_omp_num_threads():
    """Two thread pools (BLAS's and OpenMP's) on the same cores fight: one is the default."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    code = "import minidl.kernels as K; print(K.get_num_threads(), K._im2col.get_num_threads())"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]


@needs_openmp
@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("active", "ACTIVE")])
def test_the_kernels_openmp_threads_sleep_when_idle_unless_told_otherwise(given, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    env["OMP_DISPLAY_ENV"] = "TRUE"  # the OpenMP runtime prints its settings as it loads
    code = "import os, minidl.kernels; print('left:', os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert f"OMP_WAIT_POLICY = '{expected}'" in out.stderr, out.stderr
    assert f"left: {given}" in out.stdout  # the environment is as it was
