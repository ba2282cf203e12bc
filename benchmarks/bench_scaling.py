"""Strong scaling of data-parallel training: P = 1, 2, 4 processes on one machine.

The same global batch is split over P ranks (``DistributedDataParallel``),
and time per epoch is measured side by side in one run, for:

- lenet on 28x28 inputs (synthetic, MNIST-sized) and the MLP on the digits;
- P = 1 with one thread; P = 1 with every core, the honest baseline a user
  compares with: the fastest of BLAS threads only, minidl's OpenMP kernel
  threads only, and both; P = 2 and P = 4 with one thread per rank;
- overlap on and off, and bucket caps 0 (one all-reduce per parameter), 1 MiB
  and unlimited;
- P = 2 without communication: two ranks that each train a plain model on
  their shard, no DDP at all, the ceiling of P = 2 on this machine (what
  sharing the host alone costs).

It prints speedup, efficiency and the communication fraction, and compares
DDP's communication time per step with one ``MPI.Allreduce`` of all the
gradients at once. This machine has 2 cores: speedups are judged at P = 2, and
P = 4 runs oversubscribed (two ranks per core), which the table marks.

The headline configurations (P = 1 one thread and all cores, P = 2 without
communication, P = 2 with overlap on and off at caps 1 and 0 MiB) run in
``--repeats`` interleaved rounds, each round launching every one of them once,
in an order rotated from round to round; the table shows medians over the
rounds, and speedups are medians of the per-round ratios, with their range.
This is because the machine's speed drifts by about 30 % over tens of seconds
(and its two vCPUs share one physical core, so any other load slows both), so
only runs made close together compare. The other rows are single runs.

Run (it starts its own ``mpiexec`` jobs)::

    python benchmarks/bench_scaling.py            # table
    python benchmarks/bench_scaling.py --repeats 5 --plot scaling.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def worker(args: argparse.Namespace) -> None:
    """One configuration under mpiexec: time epochs, report rank 0's numbers as one JSON line.

    With ``args.algorithm == "none"`` the model is not wrapped in
    ``DistributedDataParallel``: every rank trains alone on its shard, and the
    communication numbers are 0.
    """
    import numpy as np
    from mpi4py import MPI
    from threadpoolctl import threadpool_info, threadpool_limits

    # After importing NumPy: before, no BLAS is loaded and the limit binds nothing.
    threadpool_limits(args.blas_threads, user_api="blas")
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    if blas != [args.blas_threads]:
        raise SystemExit(f"asked for {args.blas_threads} BLAS threads, NumPy's BLAS has {blas}")

    import minidl
    import minidl.functional as F
    from minidl import kernels, models, optim
    from minidl.data import DataLoader, TensorDataset, load_digits
    from minidl.parallel import DistributedDataParallel, DistributedSampler

    kernels.set_num_threads(args.omp_threads)
    comm = MPI.COMM_WORLD
    rank, p = comm.Get_rank(), comm.Get_size()
    minidl.manual_seed(0)
    if args.model == "lenet28":
        rng = np.random.default_rng(0)
        train = TensorDataset(rng.random((args.samples, 1, 28, 28), dtype=np.float32),
                              rng.integers(0, 10, args.samples))
        model = models.lenet(28)
    else:
        train, _ = load_digits()
        model = models.mlp()
    cap = float("inf") if args.cap == "inf" else float(args.cap)
    ddp = None
    if args.algorithm != "none":
        ddp = DistributedDataParallel(model, algorithm=args.algorithm, bucket_cap_mb=cap,
                                      overlap=args.overlap == "on")
    net = model if ddp is None else ddp
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    sampler = DistributedSampler(train, num_replicas=p, rank=rank, seed=0)
    loader = DataLoader(train, batch_size=args.batch_size // p, sampler=sampler)

    epoch_times = []
    for epoch in range(args.epochs + 1):  # epoch 0 warms up and is dropped
        sampler.set_epoch(epoch)
        if epoch == 1 and ddp is not None:
            ddp.reset_stats()
        comm.Barrier()
        began = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        epoch_times.append(time.perf_counter() - began)
    if ddp is None:  # no communication at all
        steps, comm_seconds, wait_seconds = 1, 0.0, 0.0
    else:
        steps, comm_seconds, wait_seconds = (max(ddp.stats.steps, 1), ddp.stats.comm_seconds,
                                             ddp.stats.wait_seconds)

    # The yardstick: one MPI.Allreduce of every gradient at once, per step.
    flat = np.zeros(sum(q.size for q in model.parameters()), dtype=np.float32)
    reps = 50
    comm.Barrier()
    began = time.perf_counter()
    for _ in range(reps):
        comm.Allreduce(MPI.IN_PLACE, flat)
    one_allreduce = (time.perf_counter() - began) / reps
    if ddp is not None:
        ddp.close()
    if rank == 0:
        print(json.dumps({
            "epoch": statistics.median(epoch_times[1:]),
            "comm_per_step": comm_seconds / steps,
            "wait_per_step": wait_seconds / steps,
            "step": statistics.median(epoch_times[1:]) / max(len(loader), 1),
            "one_allreduce": one_allreduce,
            "buckets": len(ddp.buckets) if ddp is not None else 0,
        }))


def launch(p: int, threads: tuple[int, int], model: str, batch: int, epochs: int, overlap: str,
           cap: str, algorithm: str, samples: int) -> dict:
    """Run one configuration in its own mpiexec job and return rank 0's numbers.

    ``threads`` is (BLAS threads, OpenMP kernel threads) per process.
    """
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads[1])}
    cmd = [mpiexec, "-n", str(p), sys.executable, "-m", "mpi4py", HERE, "--worker",
           "--model", model, "--blas-threads", str(threads[0]), "--omp-threads", str(threads[1]),
           "--batch-size", str(batch), "--epochs", str(epochs), "--overlap", overlap, "--cap", cap,
           "--algorithm", algorithm, "--samples", str(samples)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900,
                         start_new_session=True)
    if out.returncode != 0:
        raise SystemExit(f"configuration failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_rounds(configs: dict[str, tuple], model: str, batch: int, epochs: int, samples: int,
               repeats: int) -> dict[str, list[dict]]:
    """Run every configuration once per round, over ``repeats`` interleaved rounds.

    Round ``r`` launches all the configurations in their order rotated by
    ``r * len(configs) // repeats`` places, so that each takes its turn early
    and late in a round.

    Parameters
    ----------
    configs : dict of str to tuple
        Name -> (P, (BLAS threads, kernel threads), overlap, cap, algorithm).
    model, batch, epochs, samples
        As for :func:`launch`.
    repeats : int
        Number of rounds.

    Returns
    -------
    dict of str to list of dict
        Name -> the configuration's numbers, one dict per round, in round order.
    """
    names = list(configs)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeats):
        k = r * len(names) // repeats
        for name in names[k:] + names[:k]:
            p, threads, overlap, cap, algorithm = configs[name]
            results[name].append(launch(p, threads, model, batch, epochs, overlap, cap, algorithm,
                                        samples))
    return results


def median_of(runs: list[dict]) -> dict:
    """Median over runs of every field of a configuration's numbers."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def ratios(base: list[dict], runs: list[dict], key: str = "epoch") -> list[float]:
    """``base[key] / runs[key]``, round by round.

    Parameters
    ----------
    base, runs : list of dict
        Numbers of two configurations. When both have one entry per round,
        they are paired by round; otherwise (``runs`` is a single run made
        after the rounds) each run is compared with the median of ``base``.
    key : str
        The field compared.

    Returns
    -------
    list of float
        One ratio per entry of ``runs``.
    """
    if len(base) == len(runs):
        return [b[key] / x[key] for b, x in zip(base, runs)]
    return [statistics.median(b[key] for b in base) / x[key] for x in runs]


def spread(values: list[float], fmt: str = ".2f") -> str:
    """The min-max range of per-round values, e.g. ``"rounds 1.55-1.71"``."""
    return f"rounds {min(values):{fmt}}-{max(values):{fmt}}"


def main(args: argparse.Namespace) -> None:
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    cores = os.cpu_count() or 1
    rows = []
    candidates = [f"BLAS {b}, kernels {o}" for b, o in ((cores, 1), (1, cores), (cores, cores))]
    for model, batch, epochs in (("lenet28", 128, args.epochs), ("mlp", 128, args.epochs)):
        print(f"\n{model}: global batch {batch}, "
              f"{args.samples if model == 'lenet28' else 1442} samples, "
              f"median of {epochs} epochs, {cores} cores")
        print("P=1, P=2 overlap on/off at cap 1 and 0 MiB, and P=2 without communication: "
              f"medians of {args.repeats} interleaved rounds; other rows: one run each")
        print(f"{'configuration':52s} {'s/epoch':>8s} {'speedup':>8s} {'vs all-core':>11s} "
              f"{'effic.':>7s} {'comm %':>7s} {'wait %':>7s}")

        # The headline configurations, launched in interleaved rounds.
        headline = {"one thread": (1, (1, 1), "on", "1", "ring")}
        for name, (b, o) in zip(candidates, ((cores, 1), (1, cores), (cores, cores))):
            headline[name] = (1, (b, o), "on", "1", "ring")
        headline["no communication"] = (2, (1, 1), "on", "1", "none")
        for overlap, cap in (("on", "1"), ("off", "1"), ("on", "0"), ("off", "0")):
            headline[f"overlap {overlap}, cap {cap}"] = (2, (1, 1), overlap, cap, args.algorithm)
        measured = run_rounds(headline, model, batch, epochs, args.samples, args.repeats)
        # The all-core baseline is each round's fastest candidate.
        best = [min(candidates, key=lambda name: measured[name][r]["epoch"])
                for r in range(args.repeats)]
        measured["all cores"] = [measured[name][r] for r, name in enumerate(best)]
        usual = max(candidates, key=best.count)

        configs = [("P=1, 1 thread", 1, "-", "-", "one thread"),
                   (f"P=1, {cores} cores "
                    f"({usual}: best in {best.count(usual)}/{args.repeats} rounds)",
                    1, "-", "-", "all cores"),
                   ("P=2, no communication (ceiling)", 2, "-", "-", "no communication")]
        for p in (2, 4):
            for overlap, cap in (("on", "1"), ("off", "1"), ("on", "0"), ("off", "0"),
                                 ("on", "inf")):
                label = (f"P={p}{' (oversubscribed)' if p > cores else ''}, "
                         f"overlap {overlap}, cap {cap} MiB")
                name = (f"overlap {overlap}, cap {cap}" if p == 2
                        else f"P={p}, overlap {overlap}, cap {cap}")
                configs.append((label, p, overlap, cap, name))
        for label, p, overlap, cap, name in configs:
            if name not in measured:  # not a headline configuration: one run
                measured[name] = [launch(p, (1, 1), model, batch, epochs, overlap, cap,
                                         args.algorithm, args.samples)]
            runs = measured[name]
            r = median_of(runs)
            speedup = statistics.median(ratios(measured["one thread"], runs))
            vs_all = statistics.median(ratios(measured["all cores"], runs))
            print(f"{label:52s} {r['epoch']:8.3f} {speedup:7.2f}x {vs_all:10.2f}x "
                  f"{speedup / p:6.0%} {r['comm_per_step'] / r['step']:6.0%} "
                  f"{r['wait_per_step'] / r['step']:6.0%}")
            rows.append({"model": model, "label": label, "p": p, "overlap": overlap, "cap": cap,
                         "runs": len(runs), "speedup": speedup, **r})

        two_runs = measured["overlap on, cap 1"]
        two = median_of(two_runs)
        over_one, over_all = (ratios(measured["one thread"], two_runs),
                              ratios(measured["all cores"], two_runs))
        print(f"P=2 speedup: {statistics.median(over_one):.2f}x over one thread "
              f"({spread(over_one)}), {statistics.median(over_all):.2f}x over one process "
              f"on {cores} cores ({spread(over_all)})")
        ceiling = ratios(measured["one thread"], measured["no communication"])
        reached = ratios(measured["no communication"], two_runs, key="step")
        print("P=2 ceiling (two ranks, no communication): "
              f"{statistics.median(ceiling):.2f}x over one thread ({spread(ceiling)}); "
              f"DDP reaches {statistics.median(reached):.0%} of it ({spread(reached, '.0%')})")
        for cap in ("1", "0"):
            on, off = measured[f"overlap on, cap {cap}"], measured[f"overlap off, cap {cap}"]
            step_ratio = ratios(on, off, key="step")
            print(f"P=2 cap {cap} MiB: overlap step {median_of(on)['step'] * 1e3:.2f} ms "
                  f"vs no-overlap {median_of(off)['step'] * 1e3:.2f} ms "
                  f"(ratio {statistics.median(step_ratio):.2f}, {spread(step_ratio)})")
        ratio = two["comm_per_step"] / max(two["one_allreduce"], 1e-9)
        print(f"P=2 DDP communication per step {two['comm_per_step'] * 1e3:.2f} ms = "
              f"{ratio:.2f}x one MPI.Allreduce of all gradients "
              f"({two['one_allreduce'] * 1e3:.2f} ms, back to back, caches warm)")
        # The same DDP with MPI's own Allreduce per bucket: the yardstick in the
        # same place, after backward has pushed the buffers out of the caches.
        with_mpi = launch(2, (1, 1), model, batch, epochs, "on", "1", "mpi", args.samples)
        ratio = two["comm_per_step"] / max(with_mpi["comm_per_step"], 1e-9)
        print(f"P=2 DDP communication per step {two['comm_per_step'] * 1e3:.2f} ms "
              f"with {args.algorithm} = {ratio:.2f}x the same DDP with MPI's Allreduce "
              f"({with_mpi['comm_per_step'] * 1e3:.2f} ms)")
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, model in zip(axes, ("lenet28", "mlp")):
        mine = [r for r in rows if r["model"] == model]
        labels = [r["label"].replace(", ", "\n", 1) for r in mine]
        ax.barh(range(len(mine)), [r["speedup"] for r in mine], color="C0")
        ax.set_yticks(range(len(mine)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1, color="0.5", lw=0.8)
        ax.set(xlabel="speedup over one process, one thread", title=model)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="lenet28")
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--omp-threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--overlap", default="on")
    parser.add_argument("--cap", default="1")
    parser.add_argument("--algorithm", default="ring",
                        help="DDP's all-reduce algorithm; in a worker, 'none' trains without DDP")
    parser.add_argument("--samples", type=int, default=4096,
                        help="synthetic 28x28 samples (lenet28)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds of the headline configurations "
                             "(medians are reported)")
    parser.add_argument("--plot", help="draw the speedups to this PNG")
    ns = parser.parse_args()
    worker(ns) if ns.worker else main(ns)
