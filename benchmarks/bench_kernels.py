"""How much faster is each compiled kernel than its NumPy reference, on 1 and 2 threads?

Run::

    python benchmarks/bench_kernels.py
    python benchmarks/bench_kernels.py --repeats 31 --threads 4

For every kernel and a few course-sized shapes (batch 64, 1 to 32 channels,
8x8 to 28x28 images, 3x3 and 5x5 convolution windows, 2x2 and 3x3 pooling
windows), the NumPy reference, the Cython kernel on one OpenMP thread and the
Cython kernel on ``--threads`` threads are timed side by side: every repeat
times all three, one after the other, so they share the machine's mood, and
each column is the median over the repeats. The table gives the times and
three ratios: reference / Cython on 1 thread, reference / Cython on N
threads, and Cython 1 thread / Cython N threads (the parallel speedup).

The kernels' own results are checked against the reference before timing.
NumPy's BLAS plays no part: none of these kernels calls it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

import minidl.kernels as K
from minidl.kernels import _im2col, _pool, reference

# (x shape, kernel_size, stride, padding, what it is in a course network)
CONV_SHAPES = [
    ((64, 1, 8, 8), 3, 1, 1, "digits conv1"),
    ((64, 16, 8, 8), 3, 1, 1, "digits conv2"),
    ((64, 1, 28, 28), 5, 1, 2, "LeNet conv1"),
    ((64, 6, 14, 14), 5, 1, 0, "LeNet conv2"),
    ((64, 32, 14, 14), 3, 1, 1, "wide 3x3"),
    ((64, 32, 28, 28), 3, 1, 1, "wide 3x3, 28x28"),
]
POOL_SHAPES = [
    ((64, 16, 8, 8), 2, 2, 0, "digits pool"),
    ((64, 6, 28, 28), 2, 2, 0, "LeNet pool1"),
    ((64, 16, 10, 10), 2, 2, 0, "LeNet pool2"),
    ((64, 32, 28, 28), 2, 2, 0, "wide 2x2"),
    ((64, 16, 14, 14), 3, 2, 1, "overlapping 3x3"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=15, help="timed repeats per column (default 15)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="OpenMP threads of the last column (default 2)"
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    return parser.parse_args()


def seconds_per_call(call: Callable[[], object], calls: int) -> float:
    """Wall-clock seconds per call, over ``calls`` calls in a row."""
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


def side_by_side(
    numpy_call: Callable[[], object], cython_call: Callable[[], object], threads: int, repeats: int
) -> tuple[float, float, float]:
    """Median seconds per call of the reference, Cython on 1 thread and on ``threads``.

    Each repeat times the three one after the other; a repeat makes enough
    calls to last about 20 ms, so the timer's resolution does not matter.
    """
    variants = [(numpy_call, 1), (cython_call, 1), (cython_call, threads)]
    calls = []
    for call, n in variants:  # warm up (page faults, OpenMP thread pool) and size the loops
        K.set_num_threads(n)
        once = seconds_per_call(call, 1)
        calls.append(max(1, round(0.02 / max(once, 1e-7))))
    samples: list[list[float]] = [[], [], []]
    for _ in range(repeats):
        for (call, n), count, times in zip(variants, calls, samples):
            K.set_num_threads(n)
            times.append(seconds_per_call(call, count))
    numpy_s, one_s, many_s = (statistics.median(times) for times in samples)
    return numpy_s, one_s, many_s


def check_same(got: object, expected: object) -> None:
    """Raise unless a compiled result equals the reference's (a pair for maxpool2d_forward)."""
    pairs = zip(got, expected) if isinstance(expected, tuple) else [(got, expected)]
    for got_array, expected_array in pairs:
        np.testing.assert_array_equal(got_array, expected_array)


def cases(
    dtype: np.dtype, rng: np.random.Generator
) -> Iterator[tuple[str, str, Callable[[], object], Callable[[], object]]]:
    """Yield ``(kernel, shape label, reference call, Cython call)`` after checking both agree."""
    for shape, k, s, p, label in CONV_SHAPES:
        where = f"{label}: {'x'.join(map(str, shape))} k{k} p{p}"
        x = rng.standard_normal(shape).astype(dtype)
        cols = reference.im2col(x, k, s, p)
        for kernel, args in (("im2col", (x,)), ("col2im", (cols, shape))):
            numpy_call = partial(getattr(reference, kernel), *args, k, s, p)
            cython_call = partial(getattr(_im2col, kernel), *args, k, s, p)
            check_same(cython_call(), numpy_call())
            yield kernel, where, numpy_call, cython_call
    for shape, k, s, p, label in POOL_SHAPES:
        where = f"{label}: {'x'.join(map(str, shape))} k{k} s{s} p{p}"
        x = rng.standard_normal(shape).astype(dtype)
        out, indices = reference.maxpool2d_forward(x, k, s, p)
        grad = rng.standard_normal(out.shape).astype(dtype)
        backward_args = (grad, indices, shape)
        for kernel, args in (("maxpool2d_forward", (x,)), ("maxpool2d_backward", backward_args)):
            numpy_call = partial(getattr(reference, kernel), *args, k, s, p)
            cython_call = partial(getattr(_pool, kernel), *args, k, s, p)
            check_same(cython_call(), numpy_call())
            yield kernel, where, numpy_call, cython_call


def main() -> None:
    """Check every kernel against its reference, then time and print the table."""
    args = parse_args()
    dtype = np.dtype(args.dtype)
    before = K.get_num_threads()
    print(
        f"minidl kernels, {dtype}, median of {args.repeats} repeats; {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), NumPy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    t = args.threads
    header = (
        f"{'kernel':<19} {'shape':<36} {'numpy ms':>9} {'cy 1T ms':>9} {f'cy {t}T ms':>9} "
        f"{'np/cy1':>7} {f'np/cy{t}':>7} {f'cy1/cy{t}':>8}"
    )
    print(header)
    print("-" * len(header))
    worst: dict[str, float] = {}
    try:
        for kernel, where, numpy_call, cython_call in cases(dtype, np.random.default_rng(0)):
            numpy_s, one_s, many_s = side_by_side(numpy_call, cython_call, t, args.repeats)
            best = max(numpy_s / one_s, numpy_s / many_s)
            worst[kernel] = min(worst.get(kernel, best), best)
            print(
                f"{kernel:<19} {where:<36} {numpy_s * 1e3:9.3f} {one_s * 1e3:9.3f} "
                f"{many_s * 1e3:9.3f} {numpy_s / one_s:6.1f}x {numpy_s / many_s:6.1f}x "
                f"{one_s / many_s:7.2f}x",
                flush=True,
            )
    finally:
        K.set_num_threads(before)
    print()
    print(f"smallest speedup over the reference (best of 1 and {t} threads); target 3.0x:")
    for kernel, ratio in worst.items():
        print(f"  {kernel:<19} {ratio:5.1f}x  {'ok' if ratio >= 3.0 else 'below target'}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
