"""Strong scaling of data-parallel training: P = 1, 2, 4 processes on one machine.

The same global batch is split over P ranks (``DistributedDataParallel``),
and time per epoch is measured side by side in one run, for:

- lenet on 28x28 inputs (synthetic, MNIST-sized) and the MLP on the digits;
- P = 1 with one thread; P = 1 with every core, the honest baseline a user
  compares with: the fastest of BLAS threads only, minidl's OpenMP kernel
  threads only, and both; P = 2 and P = 4 with one thread per rank;
- overlap on and off, and bucket caps 0 (one all-reduce per parameter), 1 MiB
  and unlimited.

It prints speedup, efficiency and the communication fraction, and compares
DDP's communication time per step with one ``MPI.Allreduce`` of all the
gradients at once. This machine has 2 cores: speedups are judged at P = 2, and
P = 4 runs oversubscribed (two ranks per core), which the table marks.

Run (it starts its own ``mpiexec`` jobs)::

    python benchmarks/bench_scaling.py            # table
    python benchmarks/bench_scaling.py --plot scaling.png
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
    """One configuration under mpiexec: time epochs, report rank 0's numbers as one JSON line."""
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
    net = DistributedDataParallel(model, algorithm=args.algorithm, bucket_cap_mb=cap, overlap=args.overlap == "on")
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    sampler = DistributedSampler(train, num_replicas=p, rank=rank, seed=0)
    loader = DataLoader(train, batch_size=args.batch_size // p, sampler=sampler)

    epoch_times = []
    for epoch in range(args.epochs + 1):  # epoch 0 warms up and is dropped
        sampler.set_epoch(epoch)
        if epoch == 1:
            net.reset_stats()
        comm.Barrier()
        began = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        epoch_times.append(time.perf_counter() - began)
    stats = net.stats
    steps = max(stats.steps, 1)

    # The yardstick: one MPI.Allreduce of every gradient at once, per step.
    flat = np.zeros(sum(q.size for q in model.parameters()), dtype=np.float32)
    reps = 50
    comm.Barrier()
    began = time.perf_counter()
    for _ in range(reps):
        comm.Allreduce(MPI.IN_PLACE, flat)
    one_allreduce = (time.perf_counter() - began) / reps
    net.close()
    if rank == 0:
        print(json.dumps({
            "epoch": statistics.median(epoch_times[1:]),
            "comm_per_step": stats.comm_seconds / steps,
            "wait_per_step": stats.wait_seconds / steps,
            "step": statistics.median(epoch_times[1:]) / max(len(loader), 1),
            "one_allreduce": one_allreduce,
            "buckets": len(net.buckets),
        }))


def launch(p: int, threads: tuple[int, int], model: str, batch: int, epochs: int, overlap: str, cap: str,
           algorithm: str, samples: int) -> dict:
    """Run one configuration in its own mpiexec job and return rank 0's numbers.

    ``threads`` is (BLAS threads, OpenMP kernel threads) per process.
    """
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads[1])}
    cmd = [mpiexec, "-n", str(p), sys.executable, "-m", "mpi4py", HERE, "--worker", "--model", model,
           "--blas-threads", str(threads[0]), "--omp-threads", str(threads[1]), "--batch-size", str(batch),
           "--epochs", str(epochs), "--overlap", overlap, "--cap", cap, "--algorithm", algorithm,
           "--samples", str(samples)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, start_new_session=True)
    if out.returncode != 0:
        raise SystemExit(f"configuration failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    rows = []
    for model, batch, epochs in (("lenet28", 128, args.epochs), ("mlp", 128, args.epochs)):
        print(f"\n{model}: global batch {batch}, {args.samples if model == 'lenet28' else 1442} samples, "
              f"median of {epochs} epochs, {cores} cores")
        print(f"{'configuration':52s} {'s/epoch':>8s} {'speedup':>8s} {'vs all-core':>11s} {'effic.':>7s} "
              f"{'comm %':>7s} {'wait %':>7s}")
        base1 = launch(1, (1, 1), model, batch, epochs, "on", "1", "ring", args.samples)
        candidates = {f"BLAS {b}, kernels {o}": launch(1, (b, o), model, batch, epochs, "on", "1", "ring",
                                                       args.samples)
                      for b, o in ((cores, 1), (1, cores), (cores, cores))}
        best = min(candidates, key=lambda k: candidates[k]["epoch"])
        base_all = candidates[best]
        configs = [("P=1, 1 thread", 1, "on", "1", base1), (f"P=1, {cores} cores ({best} threads)", 1, "on", "1",
                                                              base_all)]
        for p in (2, 4):
            for overlap, cap in (("on", "1"), ("off", "1"), ("on", "0"), ("off", "0"), ("on", "inf")):
                label = f"P={p}{' (oversubscribed)' if p > cores else ''}, overlap {overlap}, cap {cap} MiB"
                configs.append((label, p, overlap, cap, None))
        measured = {}
        for label, p, overlap, cap, known in configs:
            r = known or launch(p, (1, 1), model, batch, epochs, overlap, cap, args.algorithm, args.samples)
            measured[(p, overlap, cap)] = r
            speedup = base1["epoch"] / r["epoch"]
            print(f"{label:52s} {r['epoch']:8.3f} {speedup:7.2f}x {base_all['epoch'] / r['epoch']:10.2f}x "
                  f"{speedup / p:6.0%} {r['comm_per_step'] / r['step']:6.0%} {r['wait_per_step'] / r['step']:6.0%}")
            rows.append({"model": model, "label": label, "p": p, "overlap": overlap, "cap": cap, **r})
        two = measured[(2, "on", "1")]
        print(f"P=2 speedup: {base1['epoch'] / two['epoch']:.2f}x over one thread, "
              f"{base_all['epoch'] / two['epoch']:.2f}x over one process on {cores} cores")
        for cap in ("1", "0"):
            on, off = measured[(2, "on", cap)]["step"], measured[(2, "off", cap)]["step"]
            print(f"P=2 cap {cap} MiB: overlap step {on * 1e3:.2f} ms vs no-overlap {off * 1e3:.2f} ms "
                  f"(ratio {on / off:.2f})")
        ratio = two["comm_per_step"] / max(two["one_allreduce"], 1e-9)
        print(f"P=2 DDP communication per step {two['comm_per_step'] * 1e3:.2f} ms = {ratio:.2f}x one "
              f"MPI.Allreduce of all gradients ({two['one_allreduce'] * 1e3:.2f} ms, back to back, caches warm)")
        # The same DDP with MPI's own Allreduce per bucket: the yardstick in the
        # same place, after backward has pushed the buffers out of the caches.
        with_mpi = launch(2, (1, 1), model, batch, epochs, "on", "1", "mpi", args.samples)
        ratio = two["comm_per_step"] / max(with_mpi["comm_per_step"], 1e-9)
        print(f"P=2 DDP communication per step {two['comm_per_step'] * 1e3:.2f} ms with {args.algorithm} = "
              f"{ratio:.2f}x the same DDP with MPI's Allreduce ({with_mpi['comm_per_step'] * 1e3:.2f} ms)")
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, model in zip(axes, ("lenet28", "mlp")):
        mine = [r for r in rows if r["model"] == model]
        base = mine[0]["epoch"]
        labels = [r["label"].replace(", ", "\n", 1) for r in mine]
        ax.barh(range(len(mine)), [base / r["epoch"] for r in mine], color="C0")
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
    parser.add_argument("--algorithm", default="ring")
    parser.add_argument("--samples", type=int, default=4096, help="synthetic 28x28 samples (lenet28)")
    parser.add_argument("--plot", help="draw the speedups to this PNG")
    ns = parser.parse_args()
    worker(ns) if ns.worker else main(ns)
