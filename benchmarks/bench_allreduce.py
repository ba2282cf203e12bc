"""How fast is each allreduce algorithm, next to MPI's own and next to the hardware?

Run it on real ranks::

    mpiexec -n 2 python -m mpi4py benchmarks/bench_allreduce.py
    mpiexec -n 2 python -m mpi4py benchmarks/bench_allreduce.py --plot allreduce.png

For each buffer size (1 KiB to 64 MiB of float32) every algorithm runs side by
side in the same job, interleaved, so they share the machine's mood. Each row
gives the time (the slowest rank's), the ratio to MPI's ``Allreduce``, the
bus bandwidth (algorithm bandwidth times ``2 (p - 1) / p``, the NCCL-tests
convention: comparable across ``p``), the cost model's prediction, and the
time as a multiple of the *memory-traffic bound*: what copying
``2 (p - 1) / p n`` bytes and reducing ``(p - 1) / p n`` elements takes with
NumPy on one core, the memory traffic any allreduce on one machine must do.

The collectives run with ``check=False`` (no fingerprint exchange) and
without tracing, as a training loop that trusts its ranks would.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
from mpi4py import MPI

from minidl.dist import ALGORITHMS, allreduce, calibrate

comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()


def slowest(seconds: float) -> float:
    """The largest of every rank's ``seconds``: a collective is as fast as its slowest rank."""
    mine = np.array([seconds])
    comm.Allreduce(MPI.IN_PLACE, mine, op=MPI.MAX)
    return float(mine[0])


def time_calls(call, budget: float) -> float:
    """Seconds per ``call()``: the median of 3 timed loops, each about ``budget / 3`` long."""
    call()  # warm up: schedules cached, MPI connections open
    comm.Barrier()
    started = time.perf_counter()
    call()
    once = slowest(time.perf_counter() - started)
    repeats = max(1, int(budget / 3 / max(once, 1e-7)))
    loops = []
    for _ in range(3):
        comm.Barrier()
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        loops.append(slowest(time.perf_counter() - started) / repeats)
    return float(np.median(loops))


def memory_bound(n: int, budget: float) -> float:
    """Seconds to copy 2 (p - 1) / p n float32 and add (p - 1) / p n of them, on rank 0."""
    seconds = np.zeros(1)
    if rank == 0 and p > 1:
        moved, reduced = 2 * (p - 1) * n // p, (p - 1) * n // p
        src, dst = np.ones(moved, np.float32), np.empty(moved, np.float32)
        a, b = np.ones(reduced, np.float32), np.ones(reduced, np.float32)
        seconds[0] = _median_time(lambda: np.copyto(dst, src), budget / 2)
        seconds[0] += _median_time(lambda: np.add(a, b, out=a), budget / 2)
    comm.Bcast(seconds, root=0)
    return float(seconds[0])


def _median_time(call, budget: float) -> float:
    """Median seconds of ``call()`` on this rank alone, over about ``budget`` seconds."""
    times = []
    deadline = time.perf_counter() + budget
    while len(times) < 3 or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def human(nbytes: int) -> str:
    """1 KiB, 64 MiB, ..."""
    for unit in ("MiB", "KiB"):
        scale = 1 << (20 if unit == "MiB" else 10)
        if nbytes >= scale:
            return f"{nbytes // scale} {unit}"
    return f"{nbytes} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mib", type=int, default=64, help="largest buffer, in MiB")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per measurement")
    parser.add_argument("--plot", metavar="FILE", help="also draw time vs size into FILE")
    args = parser.parse_args()

    algorithms = [*ALGORITHMS["allreduce"], "auto", "mpi"]
    sizes = [1 << k for k in range(10, 21 + args.max_mib.bit_length(), 2)]
    model = calibrate(comm)
    if rank == 0:
        print(f"allreduce of float32 on {p} ranks, {MPI.Get_library_version().splitlines()[0]}")
        print(
            f"calibrated model: alpha {model.alpha * 1e6:.2f} us, "
            f"beta {model.beta * 1e9:.3f} ns/B ({1e-9 / model.beta:.1f} GB/s), "
            f"gamma {model.gamma * 1e9:.3f} ns/B"
        )

    measured: dict[str, list[float]] = {a: [] for a in algorithms}
    for nbytes in sizes:
        buf = np.zeros(nbytes // 4, np.float32)  # zeros: summing never overflows
        bound = memory_bound(buf.size, args.budget)
        for algorithm in algorithms:
            call = functools.partial(allreduce, buf, algorithm=algorithm, check=False)
            measured[algorithm].append(time_calls(call, args.budget))
        if rank == 0:
            print_size(nbytes, algorithms, measured, bound, model)

    if rank == 0:
        print_verdict(sizes, measured, model)
        if args.plot:
            plot(args.plot, sizes, measured, model)


ROW = "  {:<26}{:>10}{:>8}{:>9}{:>12}{:>10}{:>12}".format


def print_size(nbytes: int, algorithms: list[str], measured: dict, bound: float, model) -> None:
    """The table of one buffer size: one row per algorithm."""
    mpi = measured["mpi"][-1]
    print(f"\n{human(nbytes)}: MPI Allreduce {mpi * 1e6:.1f} us, bound {bound * 1e6:.1f} us")
    print(ROW("algorithm", "time us", "x MPI", "x bound", "busbw GB/s", "model us", "model/meas"))
    for algorithm in algorithms:
        t = measured[algorithm][-1]
        busbw = nbytes / t * 2 * (p - 1) / p / 1e9
        chosen = model.choose(p, nbytes) if algorithm == "auto" else algorithm
        predicted = model.predict(chosen, p, nbytes) if chosen != "mpi" else float("nan")
        name = f"auto ({chosen})" if algorithm == "auto" else algorithm
        x_bound = t / bound if bound > 0 else float("nan")
        print(
            ROW(
                name,
                f"{t * 1e6:.1f}",
                f"{t / mpi:.2f}",
                f"{x_bound:.2f}",
                f"{busbw:.2f}",
                f"{predicted * 1e6:.1f}",
                f"{predicted / t:.2f}",
            )
        )


def print_verdict(sizes: list[int], measured: dict, model) -> None:
    """Where the ring overtakes recursive doubling, measured and predicted; how good "auto" is."""

    def crossover(ring: list[float], doubling: list[float]) -> str:
        for nbytes, r, d in zip(sizes, ring, doubling):
            if r < d:
                return human(nbytes)
        return "none"

    predicted = {a: [model.predict(a, p, s) for s in sizes] for a in ("ring", "recursive_doubling")}
    print("\nring faster than recursive doubling from:")
    print(f"  measured  {crossover(measured['ring'], measured['recursive_doubling'])}")
    print(f"  predicted {crossover(predicted['ring'], predicted['recursive_doubling'])}")
    ours = [a for a in measured if a not in ("auto", "mpi")]
    worst = max(measured["auto"][i] / min(measured[a][i] for a in ours) for i in range(len(sizes)))
    print(f"auto is at most {worst:.2f} x the best of our algorithms at any size")


def plot(path: str, sizes: list[int], measured: dict, model) -> None:
    """Time vs size, one line per algorithm, the model's prediction dashed beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (algorithm, times) in enumerate(measured.items()):
        colour = plt.get_cmap("tab10")(i)
        ax.loglog(sizes, times, "o-", color=colour, label=algorithm)
        if algorithm not in ("mpi", "auto"):
            predicted = [model.predict(algorithm, p, s) for s in sizes]
            ax.loglog(sizes, predicted, "--", color=colour, alpha=0.6)
    ax.set_xlabel("buffer size (bytes)")
    ax.set_ylabel("time per allreduce (s)")
    ax.set_title(f"allreduce on {p} ranks: measured (solid), alpha-beta-gamma model (dashed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
