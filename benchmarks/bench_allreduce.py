"""How fast is each allreduce algorithm, next to MPI's own and next to the hardware?

Run it on real ranks::

    mpiexec -n 2 python -m mpi4py benchmarks/bench_allreduce.py
    mpiexec -n 2 python -m mpi4py benchmarks/bench_allreduce.py --max-mib 4 --plot allreduce.png
    mpiexec -n 2 python -m mpi4py benchmarks/bench_allreduce.py --max-mib 0 --piece-bytes 0

For each buffer size (float32, powers of two from 1 KiB to ``--max-mib``) the
rows run side by side in the same job: every algorithm with ``check=False``
and no trace, as a training loop that trusts its ranks would; ``auto`` (the
calibrated model's pick); ``ring +check+trace``, the ring with the fingerprint
check and a trace, as a student runs it; ``ring, reference executor``, the
ring on the plain executor (``minidl.distributed.use("reference")``: no
target, shown so that the course can discuss what the fast path's tuning
buys); and ``mpi``, MPI's ``Allreduce`` called through
:func:`minidl.distributed.allreduce`. Every ratio is to MPI's
``Allreduce`` called directly with mpi4py, what a program would do without
minidl. The rows are timed in interleaved passes, each row getting a slice of
``--budget`` per pass in a rotating order, so that a machine shared with
other work slows them alike; each row's time is the median over the passes of
the slowest rank's time per call. Each ratio between two rows is the median
over the passes of their ratio within a pass (rows of one pass ran within a
fraction of a second of each other, while the machine's speed drifts over
seconds): the same code timed twice then comes out near 1.00 where a ratio
of medians taken seconds apart can be off by 20% or more.

Each row gives the time, the ratio to MPI, the time as a multiple of the
*memory-traffic bound* (what copying ``2 (p - 1) / p n`` bytes and reducing
``(p - 1) / p n`` elements takes with NumPy on one core, timed as one more
interleaved row: the memory traffic any allreduce on one machine must do),
the bus bandwidth (algorithm bandwidth
times ``2 (p - 1) / p``, the NCCL-tests convention: comparable across ``p``),
and the calibrated cost model's prediction. The end of the run checks the
targets of the collectives issue against what was measured.

Called back to back, a collective finds its buffer as its last call left it,
and on one machine that costs: the half this rank reduces into was last read
by the other rank (its copy in the allgather), so the other core holds those
cache lines, and writing each one first takes it back from there. On 2 ranks
at 1 MiB that made the reduction 3 times slower than on lines this core
holds alone, for MPI's ``Allreduce`` as for minidl's ring. A training step
writes its gradients before each allreduce, which takes the lines back
beforehand. So from 1 MiB on, two more rows time the ring and MPI's
``Allreduce`` each right after this rank writes the whole buffer
(``np.copyto``), and show their time less that of the write alone (timed as
a row too, and taken off pass by pass). The issue's ring target is checked
on the back-to-back rows; the written-first ratio is printed below it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from mpi4py import MPI

from minidl.distributed import ALGORITHMS, Calibration, Trace, allreduce, calibrate, use
from minidl.distributed.fast import executor

comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()

OURS = list(ALGORITHMS["allreduce"])
CHECKED = "ring +check+trace"
PLAIN = "ring, reference executor"
REFERENCE = "MPI Allreduce"
BOUND = "memory-traffic bound"
WRITTEN = {"ring": "ring, written first", REFERENCE: "MPI Allreduce, written first"}
WRITE = "write alone"
WRITTEN_FROM = 1 << 20  # bytes: the sizes of the ring target


def slowest(seconds: float) -> float:
    """The largest of every rank's ``seconds``: a collective is as fast as its slowest rank."""
    mine = np.array([seconds])
    comm.Allreduce(MPI.IN_PLACE, mine, op=MPI.MAX)
    return float(mine[0])


def time_interleaved(
    calls: dict[str, Callable[[], object]], budget: float, passes: int
) -> dict[str, np.ndarray]:
    """Seconds per call of each of ``calls`` in each of ``passes`` interleaved passes.

    Each pass times every call for about ``budget / passes`` seconds (at least
    one call), in an order rotated by one each pass.
    """
    names = list(calls)
    repeats = {}
    for name in names:
        calls[name]()  # warm up: plan compiled, MPI connections open
        comm.Barrier()
        started = time.perf_counter()
        calls[name]()
        once = slowest(time.perf_counter() - started)
        repeats[name] = max(1, int(budget / passes / max(once, 1e-7)))
    per_call: dict[str, list[float]] = {name: [] for name in names}
    for k in range(passes):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            call, n = calls[name], repeats[name]
            comm.Barrier()
            started = time.perf_counter()
            for _ in range(n):
                call()
            per_call[name].append(slowest(time.perf_counter() - started) / n)
    return {name: np.array(times) for name, times in per_call.items()}


def memory_bound(n: int) -> Callable[[], object]:
    """Copy 2 (p - 1) / p n float32 and add (p - 1) / p n of them, on rank 0 (others: nothing).

    Timed as one more row of the table, interleaved with the algorithms, so
    that it sees the same machine they do.
    """
    if rank != 0 or p == 1:
        return lambda: None
    moved, reduced = 2 * (p - 1) * n // p, (p - 1) * n // p
    src, dst = np.ones(moved, np.float32), np.empty(moved, np.float32)
    a, b = np.ones(reduced, np.float32), np.ones(reduced, np.float32)

    def traffic() -> None:
        np.copyto(dst, src)
        np.add(a, b, out=a)

    return traffic


def human(nbytes: int) -> str:
    """1 KiB, 64 MiB, ..."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes} B"


def rows_for(buf: np.ndarray) -> dict[str, Callable[[], object]]:
    """Every row of the table, as a call on ``buf`` (zeros: summing never overflows)."""
    rows: dict[str, Callable[[], object]] = {
        name: (lambda name=name: allreduce(buf, algorithm=name, check=False))
        for name in [*OURS, "auto", "mpi"]
    }
    rows[CHECKED] = lambda: allreduce(buf, algorithm="ring", trace=Trace())
    rows[PLAIN] = lambda: _on_the_reference_executor(buf)
    rows[REFERENCE] = lambda: comm.Allreduce(MPI.IN_PLACE, buf)
    rows[BOUND] = memory_bound(buf.size)
    if buf.nbytes >= WRITTEN_FROM:
        # As a training step leaves its gradients: just written by this rank.
        fresh = np.zeros_like(buf)
        rows[WRITE] = lambda: np.copyto(buf, fresh)
        for row, name in WRITTEN.items():
            rows[name] = lambda call=rows[row]: (np.copyto(buf, fresh), call())
    return rows


def _on_the_reference_executor(buf: np.ndarray) -> None:
    """The ring on the reference executor (run.py), as a student's first reading runs it.

    Switching the executor costs about a microsecond of each call: the
    row is shown for what the fast path's tuning buys, with no target.
    """
    with use("reference"):
        allreduce(buf, algorithm="ring", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mib", type=int, default=64, help="largest buffer, in MiB")
    parser.add_argument("--budget", type=float, default=0.45, help="seconds per row and size")
    parser.add_argument("--passes", type=int, default=9, help="interleaved passes per size")
    parser.add_argument("--plot", metavar="FILE", help="also draw time vs size into FILE")
    parser.add_argument(
        "--segment-kib",
        type=int,
        default=executor.SEGMENT_BYTES >> 10,
        help="cut longer messages into segments of this many KiB "
        "(minidl.distributed.fast.executor)",
    )
    parser.add_argument(
        "--piece-bytes",
        type=int,
        default=executor.PIECE_BYTES,
        help="send mid-length steps of short buffers in pieces of at most this many bytes; "
        "0: whole (minidl.distributed.fast.executor)",
    )
    args = parser.parse_args()
    executor.SEGMENT_BYTES = args.segment_kib << 10
    executor.PIECE_BYTES = args.piece_bytes

    sizes = [1 << k for k in range(10, 20 + args.max_mib.bit_length())]
    model = calibrate(comm)
    if rank == 0:
        print(f"allreduce of float32 on {p} ranks, {MPI.Get_library_version().splitlines()[0]}")
        print(f"messages longer than {args.segment_kib} KiB travel in segments")
        if args.piece_bytes:
            print(
                f"on buffers up to {executor.BOUND_MAX_BYTES >> 10} KiB, steps longer than "
                f"{args.piece_bytes} B (up to {executor.PIECED_UP_TO_BYTES >> 10} KiB) "
                f"travel in pieces of at most {args.piece_bytes} B"
            )
        else:
            print("every step of a short buffer travels whole (--piece-bytes 0)")
        print(
            f"calibrated model: alpha {model.alpha * 1e6:.2f} us, "
            f"beta {model.beta * 1e9:.3f} ns/B ({1e-9 / max(model.beta, 1e-30):.1f} GB/s), "
            f"gamma {model.gamma * 1e9:.3f} ns/B, overhead {model.overhead * 1e6:.2f} us per call"
        )

    # Per row, per size index: the time of each pass (some rows only at some sizes).
    passes: dict[str, dict[int, np.ndarray]] = {}
    for i, nbytes in enumerate(sizes):
        buf = np.zeros(nbytes // 4, np.float32)
        for name, seconds in time_interleaved(rows_for(buf), args.budget, args.passes).items():
            passes.setdefault(name, {})[i] = seconds
        if rank == 0:
            print_size(i, nbytes, passes, model)

    if rank == 0:
        print_targets(sizes, passes, model)
        if args.plot:
            measured = {
                row: [float(np.median(times[i])) for i in range(len(sizes))]
                for row, times in passes.items()
                if row not in (BOUND, WRITE, *WRITTEN.values())
            }
            plot(args.plot, sizes, measured, model)


ROW = "  {:<30}{:>10}{:>8}{:>9}{:>12}{:>10}{:>12}".format


def predicted(row: str, nbytes: int, model: Calibration) -> float:
    """The model's time for ``row``: nan for MPI's own, which the model does not describe."""
    if row in (REFERENCE, "mpi", WRITTEN[REFERENCE]):
        return float("nan")
    mapped = {
        "auto": model.choose(p, nbytes),
        CHECKED: "ring",
        WRITTEN["ring"]: "ring",
        PLAIN: "ring",
    }
    algorithm = mapped.get(row, row)
    return model.predict(algorithm, p, nbytes)


def paired(passes: dict, row: str, other: str, i: int, less: str | None = None) -> float:
    """The ratio of ``row`` to ``other`` at size ``i``: the median of their ratios pass by pass.

    With ``less``, that row's time is taken off both first (pass by pass too).
    """
    off = passes[less][i] if less else 0.0
    return float(np.median((passes[row][i] - off) / (passes[other][i] - off)))


def print_size(i: int, nbytes: int, passes: dict, model: Calibration) -> None:
    """The table of one buffer size: one row per algorithm."""
    mpi, bound = (float(np.median(passes[row][i])) for row in (REFERENCE, BOUND))
    print(f"\n{human(nbytes)}: MPI Allreduce {mpi * 1e6:.1f} us, bound {bound * 1e6:.1f} us")
    print(ROW("algorithm", "time us", "x MPI", "x bound", "busbw GB/s", "model us", "model/meas"))
    for row in passes:
        if row in (BOUND, WRITE) or i not in passes[row]:
            continue
        # A written-first row: its time less the write's, next to MPI's written first.
        written = row in WRITTEN.values()
        less, mpi_row = (WRITE, WRITTEN[REFERENCE]) if written else (None, REFERENCE)
        t = float(np.median(passes[row][i] - (passes[less][i] if less else 0.0)))
        busbw = nbytes / t * 2 * (p - 1) / p / 1e9
        name = f"auto ({model.choose(p, nbytes)})" if row == "auto" else row
        x_bound = paired(passes, row, BOUND, i) if bound > 0 and not less else float("nan")
        guess = predicted(row, nbytes, model)
        print(
            ROW(
                name,
                f"{t * 1e6:.1f}",
                f"{paired(passes, row, mpi_row, i, less):.2f}",
                f"{x_bound:.2f}",
                f"{busbw:.2f}",
                f"{guess * 1e6:.1f}",
                f"{guess / t:.2f}",
            )
        )


def crossover(sizes: list[int], ring: list[float], doubling: list[float]) -> int | None:
    """The smallest size from which the ring is faster than recursive doubling at every size."""
    start = None
    for nbytes, r, d in zip(sizes, ring, doubling):
        if r >= d:
            start = None
        elif start is None:
            start = nbytes
    return start


def print_targets(sizes: list[int], passes: dict, model: Calibration) -> None:
    """Each performance target of the issue, with what this run measured."""
    t = {row: np.array([np.median(passes[row][i]) for i in range(len(sizes))]) for row in OURS}
    fastest = [min(OURS, key=lambda a: t[a][i]) for i in range(len(sizes))]  # by median

    def ratios(row: str | list[str], other: str | list[str]) -> np.ndarray:
        """Paired ratios of ``row`` to ``other`` (each a name, or one per size), per size."""
        rows, others = ([x] * len(sizes) if isinstance(x, str) else x for x in (row, other))
        return np.array([paired(passes, r, o, i) for i, (r, o) in enumerate(zip(rows, others))])

    size = np.array(sizes)
    big, huge = size >= 1 << 20, size >= 16 << 20
    mid, small = (size >= 64 << 10) & (size <= 256 << 10), size <= 4 << 10

    def worst(ratio: np.ndarray, where: np.ndarray) -> float:
        return float(ratio[where].max()) if where.any() else float("nan")

    guesses = np.array([[predicted(a, s, model) for s in sizes] for a in OURS])
    errors = guesses[:, big] / np.array([t[a] for a in OURS])[:, big]
    lines = [
        ("ring x MPI, every size >= 1 MiB", worst(ratios("ring", REFERENCE), big), "<= 0.90"),
        ("best of ours x MPI, 64-256 KiB", worst(ratios(fastest, REFERENCE), mid), "<= 1.20"),
        ("best of ours x MPI, <= 4 KiB", worst(ratios(fastest, REFERENCE), small), "<= 1.20"),
        ("ring x bound, >= 16 MiB", worst(ratios("ring", BOUND), huge), "<= 1.25"),
        ("check+trace x ring, >= 1 MiB", worst(ratios(CHECKED, "ring"), big), "<= 1.10"),
        ("auto x best of ours, any size", worst(ratios("auto", fastest), size > 0), "<= 1.10"),
    ]
    print("\ntargets (worst case over the sizes named):")
    written = [
        paired(passes, WRITTEN["ring"], WRITTEN[REFERENCE], i, WRITE) for i in passes.get(WRITE, {})
    ]
    for what, value, target in lines:
        verdict = "met" if value <= float(target.split()[1]) else "MISSED"
        print(f"  {what:<34}{value:>7.2f}   target {target}   {verdict}")
        if what.startswith("ring x MPI") and written:
            what, why = "  (the same, buffer written first", "as a training step leaves it)"
            print(f"  {what:<34}{max(written):>7.2f}   {why}")
    print("  the reference executor, shown for what the fast path buys (no target):")
    for what, where in (("<= 4 KiB", small), ("64-256 KiB", mid), (">= 1 MiB", big)):
        if where.any():
            plain = ratios(PLAIN, REFERENCE)[where]
            print(
                f"    {'ring, reference x MPI, ' + what:<32}{plain.min():>7.2f} to "
                f"{plain.max():.2f}   (fast ring x MPI: "
                f"{ratios('ring', REFERENCE)[where].min():.2f} to "
                f"{ratios('ring', REFERENCE)[where].max():.2f})"
            )
    if errors.size:
        low, high = errors.min(), errors.max()
        verdict = "met" if 0.5 <= low and high <= 1.5 else "MISSED"
        what = "model / measured, >= 1 MiB"
        print(f"  {what:<34}{low:>7.2f} to {high:.2f}   target 0.50 to 1.50   {verdict}")
    ring_model = [model.predict("ring", p, s) for s in sizes]
    doubling_model = [model.predict("recursive_doubling", p, s) for s in sizes]
    seen = crossover(sizes, list(t["ring"]), list(t["recursive_doubling"]))
    expected = crossover(sizes, ring_model, doubling_model)
    meet = model.crossover(p)  # where the two predicted lines cross, between the sizes timed
    exact = "" if meet is None else f" (the model's lines meet at {meet / 1024:.0f} KiB)"
    print(
        f"  ring beats recursive doubling from: measured {_size(seen)}, "
        f"predicted {_size(expected)}{exact}",
        end="",
    )
    if seen and expected:
        factor = max(seen, expected) / min(seen, expected)
        print(f" ({factor:.0f}x apart; target within 2x: {'met' if factor <= 2 else 'MISSED'})")
    else:
        print()


def _size(nbytes: int | None) -> str:
    """A size for people, or "never"."""
    return "never" if nbytes is None else human(nbytes)


def plot(path: str, sizes: list[int], measured: dict, model: Calibration) -> None:
    """Time vs size, one line per row, the model's prediction dashed beside each algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (row, times) in enumerate(measured.items()):
        colour = plt.get_cmap("tab10")(i % 10)
        ax.loglog(sizes, times, "o-", color=colour, label=row, markersize=3)
        if row in OURS:
            guesses = [model.predict(row, p, s) for s in sizes]
            ax.loglog(sizes, guesses, "--", color=colour, alpha=0.6)
    ax.set_xlabel("buffer size (bytes)")
    ax.set_ylabel("time per allreduce (s)")
    ax.set_title(f"allreduce on {p} ranks: measured (solid), alpha-beta-gamma model (dashed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
