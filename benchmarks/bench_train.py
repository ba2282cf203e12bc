"""Seconds per SGD step of minidl vs PyTorch on the CPU, same model, batch and threads.

Both frameworks train the same architecture (``minidl.models.mlp`` and
``minidl.models.lenet``) on the bundled 8x8 digits with the same batch size
and SGD with momentum, with BLAS and OpenMP held to the same number of
threads. Timings are the median over repeated epochs, measured side by side
in one run, and printed as a ratio (minidl / PyTorch; below 1 means minidl is
faster). PyTorch is optional: without it the script times minidl alone and
says so.

Run::

    python benchmarks/bench_train.py            # one thread, batch 32
    python benchmarks/bench_train.py --threads 2 --batch-size 64
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--threads", type=int, default=1, help="BLAS/OpenMP threads for both (default 1)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--epochs", type=int, default=5, help="timed epochs per framework (median taken)"
    )
    return p.parse_args()


ARGS = parse_args()
# Thread counts must be fixed before NumPy and PyTorch load their BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl import models, optim  # noqa: E402
from minidl.data import DataLoader, load_digits  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def minidl_epoch_seconds(model_name: str, train) -> tuple[float, int]:
    minidl.manual_seed(0)
    model = models.mlp() if model_name == "mlp" else models.lenet(8)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(train, batch_size=ARGS.batch_size, shuffle=True, seed=0)
    times = []
    for _ in range(ARGS.epochs + 1):  # the first epoch warms caches and is dropped
        began = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:]), len(loader)


def torch_model(model_name: str):
    nn = torch.nn
    if model_name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64),
                             nn.ReLU(), nn.Linear(64, 10))
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def torch_epoch_seconds(model_name: str, train) -> float:
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    model = torch_model(model_name)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = torch.from_numpy(np.asarray(train.arrays[0]))
    ys = torch.from_numpy(np.asarray(train.arrays[1]))
    n = len(ys)
    times = []
    g = torch.Generator().manual_seed(0)
    for _ in range(ARGS.epochs + 1):
        order = torch.randperm(n, generator=g)
        began = time.perf_counter()
        for i in range(0, n, ARGS.batch_size):
            idx = order[i:i + ARGS.batch_size]
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def main() -> None:
    train, _ = load_digits()
    print(
        f"digits, batch {ARGS.batch_size}, {ARGS.threads} thread(s), "
        f"median of {ARGS.epochs} epochs, kernels: {minidl.kernels.backend()}"
    )
    if torch is None:
        print("PyTorch is not installed (pip install torch==2.13.0): timing minidl alone")
    print(f"{'model':8s} {'minidl us/step':>15s} {'torch us/step':>14s} {'ratio':>7s}")
    for name in ("mlp", "lenet"):
        ours, steps = minidl_epoch_seconds(name, train)
        line = f"{name:8s} {ours / steps * 1e6:15.0f}"
        if torch is not None:
            theirs = torch_epoch_seconds(name, train)
            line += f" {theirs / steps * 1e6:14.0f} {ours / theirs:6.2f}x"
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
