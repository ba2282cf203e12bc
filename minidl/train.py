"""The main job: train a model on a data set and report its test accuracy.

Run ``python -m minidl.train --help`` for the options. With no options it
trains the LeNet-style CNN on the bundled handwritten digits::

    python -m minidl.train
    python -m minidl.train --model mlp --epochs 10 --metrics run.jsonl --plot run.png

Data-parallel on four ranks, each taking a quarter of every global batch
(``--parallel ddp`` is the default whenever mpiexec starts several ranks)::

    mpiexec -n 4 python -m mpi4py -m minidl.train --algorithm ring --bucket-cap-mb 1

Parameter servers (``--parallel ps``) and Hogwild! on one node, every rank
writing its updates into shared parameters without locks (``--lock`` to
serialise them); ``--straggler RANK:SECONDS`` slows one rank in every mode::

    mpiexec -n 3 python -m mpi4py -m minidl.train --model mlp --parallel ps --ps-mode async
    mpiexec -n 2 python -m mpi4py -m minidl.train --model mlp --parallel hogwild

Every rank draws the same permutation of the training set each epoch and takes
every ``p``-th sample of it, so the ``p`` ranks together train on exactly the
global batches that one process would. Rank 0 alone prints, writes metrics,
plots and checkpoints; every rank reads a checkpoint to resume.

Mistakes that would only show after an epoch are refused before the first
one: a ``--checkpoint`` whose folder is missing or not writable ends the job
at once, on every rank, with one line and exit status 2, as every bad flag
does. ``--resume`` with no checkpoint yet says so and starts from epoch 1
(``--resume=must`` refuses instead). A checkpoint saved with another
``--epochs`` continues on this run's learning-rate schedule, and says so.

The last lines printed are stable and parseable::

    test accuracy: 0.9861
    time per epoch: 0.84 s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import minidl
import minidl.functional as F
from minidl import kernels, models, nn, optim
from minidl.data import DataLoader, RandomSampler, load_digits, load_mnist
from minidl.distributed import Trace, set_timeout
from minidl.parallel import (
    SCHEDULES,
    DistributedDataParallel,
    DistributedSampler,
    Hogwild,
    ParameterServer,
    Pipeline,
    ProcessGrid,
    Straggler,
    parallelize_linears,
    pipeline_schedule,
)
from minidl.parallel.timeline import Timeline


class UsageError(Exception):
    """A bad command line or input file: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, status 2
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m minidl.train``."""
    p = _Parser(
        prog="python -m minidl.train",
        description="Train a minidl model and report its test accuracy.",
    )
    p.add_argument(
        "--model", choices=["mlp", "lenet"], default="lenet", help="model to train (default: lenet)"
    )
    p.add_argument(
        "--dataset",
        choices=["digits", "mnist"],
        default="digits",
        help="bundled 8x8 digits, or MNIST/Fashion-MNIST IDX files from --data-root",
    )
    p.add_argument(
        "--data-root", type=Path, help="folder with the MNIST IDX files (for --dataset mnist)"
    )
    p.add_argument(
        "--epochs", type=int, default=20, help="passes over the training set (default: 20)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="samples per step (default: 32)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default: 0.05)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 penalty (default: 5e-4)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="default: sgd")
    p.add_argument(
        "--schedule",
        choices=["cosine", "step", "none"],
        default="cosine",
        help="learning-rate schedule over the epochs "
        "(default: cosine; step: x0.1 every third of the run)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed for initialisation, shuffling, dropout"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="save a checkpoint here after every epoch (its folder must exist and be writable: "
        "checked before training starts)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="if-exists",
        choices=["if-exists", "must"],
        help="continue from --checkpoint; with no checkpoint there yet, say so and start from "
        "epoch 1 (--resume=must: refuse to start instead). A checkpoint saved with another "
        "--epochs continues on this run's learning-rate schedule",
    )
    p.add_argument("--metrics", type=Path, help="append one JSON line per epoch here")
    p.add_argument("--plot", type=Path, help="draw loss and accuracy curves to this PNG")
    p.add_argument(
        "--kernels",
        choices=["cython", "numpy"],
        help="compiled kernels or their NumPy reference (default: cython where the compiled "
        "kernels are built, else numpy)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=int,
        help="BLAS and OpenMP threads per process (default: all cores for one process; "
        "1 per rank when mpiexec starts several, with --parallel ddp or none)",
    )
    dp = p.add_argument_group("data parallelism (run under mpiexec)")
    dp.add_argument(
        "--parallel",
        choices=["auto", "none", "ddp", "pipeline", "ps", "hogwild"],
        default="auto",
        help="ddp: DistributedDataParallel over all ranks; pipeline: the model cut into "
        "stages; ps: parameter servers and workers (see below); hogwild: every rank updates "
        "parameters in shared memory, unlocked (one node); auto (default): ddp when "
        "mpiexec started more than one rank, none otherwise",
    )
    dp.add_argument(
        "--algorithm",
        choices=["ring", "tree", "recursive_doubling", "rabenseifner", "naive", "auto", "mpi"],
        default="ring",
        help="all-reduce algorithm (default: ring)",
    )
    dp.add_argument(
        "--bucket-cap-mb",
        type=float,
        default=1.0,
        help="gradient bucket size in MiB; 0 = one all-reduce per parameter (default: 1)",
    )
    dp.add_argument(
        "--no-overlap",
        action="store_true",
        help="all-reduce after backward instead of overlapping with it",
    )
    dp.add_argument(
        "--trace", type=Path, help="write a Chrome trace of 10 steps of the last epoch on all ranks"
    )
    dp.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end the job, naming where, when a rank waits this long for the others "
        "(minidl.distributed.set_timeout); 0 = never (default: $MINIDL_TIMEOUT if set, else 300)",
    )
    pp = p.add_argument_group(
        "pipeline parallelism (--parallel pipeline; P ranks = dp x stages x tp)")
    pp.add_argument("--pipeline-schedule", choices=list(SCHEDULES), default="1f1b",
                    help="the order of each stage's forwards and backwards (default: 1f1b)")
    pp.add_argument("--micro-batches", type=int, default=4,
                    help="micro-batches per step (default: 4)")
    pp.add_argument("--split", help="layer indices where the stages after the first start, "
                    "e.g. 3,6 (default: balanced by parameter count)")
    pp.add_argument("--chunks", type=int, help="model chunks per stage (default: 2 with "
                    "--pipeline-schedule interleaved, else 1)")
    pp.add_argument("--dp", type=int, default=1,
                    help="data-parallel replicas of the pipeline (default: 1)")
    pp.add_argument("--tp", type=int, default=1,
                    help="tensor-parallel ranks per stage: pairs of linear layers split "
                    "Megatron-style (default: 1)")
    ps = p.add_argument_group(
        "parameter servers (--parallel ps: the first --servers ranks serve, the others work)")
    ps.add_argument("--ps-mode", choices=["sync", "ssp", "async"], default="sync",
                    help="sync: every step waits for every worker; ssp: a worker may run "
                    "--staleness steps ahead; async: no waiting (default: sync)")
    ps.add_argument("--staleness", type=int, help="SSP's bound, in steps (--ps-mode ssp)")
    ps.add_argument("--servers", type=int, default=1, help="server ranks (default: 1)")
    hw = p.add_argument_group(
        "Hogwild! (--parallel hogwild: every rank, one node, shared parameters)")
    hw.add_argument("--lock", action="store_true",
                    help="serialise the updates with the shared window's lock (no update lost; "
                    "ranks wait for each other) instead of letting them race")
    p.add_argument("--straggler", metavar="RANK:SECONDS",
                   help="delay that rank's every step by SECONDS (to watch a slow worker)")
    return p


PS_FLAGS = {"ps_mode": "sync", "staleness": None, "servers": 1}
"""The parameter servers' flags and their defaults: any other value needs --parallel ps."""

HOGWILD_FLAGS = {"lock": False}
"""Hogwild's flags and their defaults: any other value needs --parallel hogwild."""

PIPELINE_FLAGS = {"pipeline_schedule": "1f1b", "micro_batches": 4, "split": None,
                  "chunks": None, "dp": 1, "tp": 1}
"""The pipeline's flags and their defaults: any other value needs --parallel pipeline."""


DEFAULT_TIMEOUT_S = 300.0
"""``--timeout``'s default: far longer than any wait of a healthy job (an
epoch's slowest rank, a checkpoint being written), short enough that a stuck
job ends within minutes."""


def check_args(args: argparse.Namespace) -> None:
    """Reject values argparse cannot check by itself, naming the flag."""
    if args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.lr <= 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    if args.momentum < 0 or args.weight_decay < 0:
        raise UsageError("--momentum and --weight-decay must be >= 0")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.resume and args.checkpoint is None:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.checkpoint is not None:
        check_checkpoint_path(args.checkpoint)
        if args.resume == "must" and not args.checkpoint.exists():
            raise UsageError(f"--resume=must: no checkpoint at {args.checkpoint}")
    if args.dataset == "mnist" and args.data_root is None:
        raise UsageError("--dataset mnist needs --data-root DIR (the folder with the IDX files)")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.bucket_cap_mb < 0:
        raise UsageError(f"--bucket-cap-mb must be >= 0, got {args.bucket_cap_mb}")
    if args.timeout is None:
        from_environment = os.environ.get("MINIDL_TIMEOUT", "").strip()
        args.timeout = float(from_environment) if from_environment else DEFAULT_TIMEOUT_S
    if not 0 <= args.timeout < float("inf"):
        raise UsageError(f"--timeout must be a number of seconds >= 0 (0 = never), "
                         f"got {args.timeout}")
    if args.parallel == "auto":
        args.parallel = "ddp" if launched_ranks() > 1 else "none"
    if args.kernels not in (None, *kernels.available()):
        raise UsageError(f"--kernels {args.kernels}: minidl's compiled kernels are not built "
                         f"(see the warning above); use --kernels numpy")
    # DDP's flags, in one place for every other mode (a pipeline traces too).
    for flag, given, modes in (("--no-overlap", args.no_overlap, ("ddp",)),
                               ("--trace", args.trace, ("ddp", "pipeline"))):
        if given and args.parallel not in modes:
            raise UsageError(f"{flag} needs --parallel {' or '.join(modes)}")
    for mode, flags in (("pipeline", PIPELINE_FLAGS), ("ps", PS_FLAGS),
                        ("hogwild", HOGWILD_FLAGS)):
        given = [f"--{k.replace('_', '-')}" for k, default in flags.items()
                 if getattr(args, k) != default]
        if given and args.parallel != mode:
            raise UsageError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} "
                             f"--parallel {mode}")
    if args.parallel == "pipeline":
        check_pipeline_args(args)
    if args.parallel == "ps":
        check_ps_args(args)
    if args.parallel == "hogwild":
        check_hogwild_args(args)
    if args.straggler is not None:
        check_straggler(args)


def check_ps_args(args: argparse.Namespace) -> None:
    """The parameter servers' flags, checked against each other and the number of ranks."""
    ranks = launched_ranks()
    if args.servers < 1 or args.servers >= ranks:
        raise UsageError(f"--servers {args.servers} on {ranks} ranks leaves no worker: "
                         f"give between 1 and {ranks - 1} (mpiexec -n P starts P ranks)")
    if args.staleness is not None and args.ps_mode != "ssp":
        raise UsageError(f"--staleness bounds --ps-mode ssp only (not {args.ps_mode})")
    if args.staleness is not None and args.staleness < 0:
        raise UsageError(f"--staleness must be at least 0, got {args.staleness}")
    args.staleness = args.staleness or 0
    workers = ranks - args.servers
    if args.batch_size % workers:
        raise UsageError(f"--batch-size {args.batch_size} does not split evenly over "
                         f"{workers} workers")
    if args.checkpoint is not None:
        raise UsageError("--checkpoint is not supported with --parallel ps yet (the servers "
                         "hold the parameters)")


def check_hogwild_args(args: argparse.Namespace) -> None:
    """Hogwild's flags, and every rank on this node, as far as the launcher says before MPI."""
    ranks, here = launched_ranks(), launched_ranks_here()
    if here is not None and here != ranks:
        raise UsageError(f"--parallel hogwild shares memory, so every rank must be on one node: "
                         f"mpiexec started {ranks} ranks, {here} of them on this node")
    if args.checkpoint is not None:
        raise UsageError("--checkpoint is not supported with --parallel hogwild yet (each rank "
                         "holds its own optimizer state)")


def check_straggler(args: argparse.Namespace) -> None:
    """``--straggler RANK:SECONDS``: parsed into ``args.straggler = (rank, seconds)``."""
    try:
        rank, seconds = args.straggler.split(":")
        args.straggler = (int(rank), float(seconds))
    except ValueError:
        raise UsageError(f"--straggler must be RANK:SECONDS, e.g. 1:0.01, got "
                         f"{args.straggler!r}") from None
    rank, seconds = args.straggler
    if not 0 <= rank < launched_ranks() or not 0 <= seconds < float("inf"):
        raise UsageError(f"--straggler {rank}:{seconds}: the rank must be one of the "
                         f"{launched_ranks()} ranks and the seconds >= 0")


def check_pipeline_args(args: argparse.Namespace) -> None:
    """The pipeline's flags, checked against each other and the number of ranks."""
    if args.micro_batches < 1:
        raise UsageError(f"--micro-batches must be at least 1, got {args.micro_batches}")
    for flag in ("dp", "tp"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.chunks is None:
        args.chunks = 2 if args.pipeline_schedule == "interleaved" else 1
    ranks = launched_ranks()
    if ranks % (args.dp * args.tp):
        raise UsageError(f"mpiexec started {ranks} ranks, which --dp {args.dp} x --tp "
                         f"{args.tp} = {args.dp * args.tp} does not divide")
    args.stages = ranks // (args.dp * args.tp)
    try:
        pipeline_schedule(args.pipeline_schedule, args.stages, args.micro_batches, 0,
                          args.chunks)
    except ValueError as exc:
        raise UsageError(f"--pipeline-schedule {args.pipeline_schedule} on {args.stages} "
                         f"stages: {exc}") from None
    if args.split is not None:
        try:
            args.split = [int(i) for i in args.split.split(",")]
        except ValueError:
            raise UsageError(f"--split must be layer indices like 3,6, got {args.split!r}") \
                from None
    # The model's layers, to cut: known before MPI starts, so a bad cut ends every rank with
    # one line (after MPI_Init, mpi4py's runner turns an exit status into MPI_Abort).
    layers = len(build_model(args.model, (1, 8, 8) if args.dataset == "digits" else (1, 28, 28)))
    pieces = args.stages * args.chunks
    if pieces > layers:
        raise UsageError(f"{args.stages} stages x {args.chunks} chunks = {pieces} pieces, but "
                         f"--model {args.model} has only {layers} layers")
    if args.split is not None and (len(args.split) != pieces - 1 or args.split != sorted(
            set(args.split)) or args.split[0] <= 0 or args.split[-1] >= layers):
        raise UsageError(f"--split must list {pieces - 1} increasing layer indices in "
                         f"(0, {layers}), where the pieces after the first start; got "
                         f"{','.join(map(str, args.split))}")
    if args.batch_size % args.dp:
        raise UsageError(f"--batch-size {args.batch_size} does not split evenly over "
                         f"--dp {args.dp} replicas")
    if args.batch_size // args.dp < args.micro_batches:
        raise UsageError(f"--batch-size {args.batch_size} gives each replica "
                         f"{args.batch_size // args.dp} samples, fewer than --micro-batches "
                         f"{args.micro_batches}")
    if args.checkpoint is not None:
        raise UsageError("--checkpoint is not supported with --parallel pipeline yet "
                         "(each rank holds only its stage)")


def check_checkpoint_path(path: Path) -> None:
    """Refuse a ``--checkpoint`` that could not be written, before any epoch is spent.

    Every rank checks: rank 0 writes the checkpoint, but every rank reads it
    to resume, so its folder must be there for all of them. Writability is
    tried, not asked of ``os.access``: a real file is created and removed,
    which also catches read-only file systems and holds for root.
    """
    folder = path.parent
    if path.is_dir():
        raise UsageError(
            f"--checkpoint {path} is a folder; name a file in it, "
            f"e.g. --checkpoint {path / 'run.npz'}"
        )
    if not folder.exists():
        raise UsageError(f"--checkpoint {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise UsageError(f"--checkpoint {path}: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise UsageError(
            f"--checkpoint {path}: cannot write in the folder {folder} ({exc.strerror})"
        ) from None


def threads_per_process(args: argparse.Namespace, world_size: int) -> int | None:
    """BLAS and OpenMP threads for this process: ``--threads``, else 1 under mpiexec, else None.

    ``None`` leaves each library's own default (all cores for BLAS). The ranks
    of one mpiexec job usually share the cores, so all cores' threads in each
    rank oversubscribe them: with ``--parallel none`` that made two ranks 4-30x
    slower than one thread each. An explicit ``--threads`` always wins.
    """
    if args.threads is not None:
        return args.threads
    if world_size > 1 or launched_ranks() > 1:
        return 1
    return None


def launched_ranks() -> int:
    """How many ranks the launcher started, read from its environment (1 outside mpiexec).

    MPICH's hydra sets ``PMI_SIZE``, Open MPI ``OMPI_COMM_WORLD_SIZE``; reading
    them avoids starting MPI in a plain single-process run.
    """
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def launched_ranks_here() -> int | None:
    """How many of the launcher's ranks run on this node, from its environment; None if unsaid.

    MPICH's hydra sets ``MPI_LOCALNRANKS``, Open MPI ``OMPI_COMM_WORLD_LOCAL_SIZE``.
    """
    for var in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return None


def load_data(args: argparse.Namespace):
    """The (train, test) datasets the flags ask for."""
    if args.dataset == "digits":
        return load_digits()
    if not args.data_root.is_dir():
        raise UsageError(f"--data-root {args.data_root} is not a folder")
    try:
        return load_mnist(args.data_root)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(" ".join(line.strip() for line in str(exc).splitlines())) from None


def build_model(name: str, image_shape: tuple[int, ...]) -> nn.Module:
    """The model for images of ``image_shape`` (C, H, W)."""
    channels, height, _ = image_shape
    if name == "mlp":
        return models.mlp(in_features=int(np.prod(image_shape)))
    return models.lenet(image_size=height, in_channels=channels)


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> optim.Optimizer:
    """SGD or Adam over the model's parameters, with the flags' hyper-parameters."""
    if args.optimizer == "adam":
        return optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    return optim.SGD(
        model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )


def build_schedule(
    args: argparse.Namespace, optimizer: optim.Optimizer
) -> optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule the flags ask for, stepped once per epoch."""
    if args.schedule == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if args.schedule == "step":
        return optim.StepLR(optimizer, step_size=max(args.epochs // 3, 1), gamma=0.1)
    return None


def epoch_lr_factors(args: argparse.Namespace) -> list[float]:
    """``--schedule``'s learning rate in each epoch, relative to ``--lr`` (1.0 in the first).

    Read off :func:`build_schedule` itself, stepped as :func:`run` steps it,
    so that servers applying ``lr * factor`` use the rates one process uses.
    """
    probe = optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=1.0)
    scheduler = build_schedule(args, probe)
    factors = []
    for _ in range(args.epochs):
        factors.append(probe.param_groups[0]["lr"])
        if scheduler:
            scheduler.step()
    return factors


def epoch_loader(
    train, args: argparse.Namespace, epoch: int, rank: int, world_size: int,
    batch_size: int | None = None,
) -> DataLoader:
    """This rank's batches for this epoch, a function of (seed, epoch) alone.

    Deriving each epoch's order from the seed and the epoch number, rather
    than from a generator that advances, is what lets a run resumed from a
    checkpoint see exactly the batches an uninterrupted run sees. With several
    ranks, each takes every ``world_size``-th sample of that same order, in
    batches of ``batch_size / world_size`` (or of ``batch_size`` if given).
    """
    if world_size == 1:
        sampler = RandomSampler(train, seed=args.seed)
    else:
        sampler = DistributedSampler(train, num_replicas=world_size, rank=rank, seed=args.seed)
    sampler.set_epoch(epoch)
    if batch_size is None:
        batch_size = args.batch_size // world_size
    return DataLoader(train, batch_size=batch_size, sampler=sampler)


@minidl.no_grad()
def evaluate(model: nn.Module, dataset, batch_size: int = 500) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``dataset``, in evaluation mode."""
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        logits = model(x)
        total_loss += F.cross_entropy(logits, y).item() * len(y)
        correct += int((logits.data.argmax(axis=1) == y.data).sum())
        count += len(y)
    model.train()
    return total_loss / count, correct / count


class StepTimer:
    """Seconds spent in forward and backward, summed over the steps it timed."""

    def __init__(self, timeline: Timeline | None = None) -> None:
        self.forward = self.backward = 0.0
        self.steps = 0
        self.timeline = timeline

    def span(self, name: str) -> "contextlib.AbstractContextManager[None]":
        return self.timeline.span(name) if self.timeline is not None else contextlib.nullcontext()


def train_epoch(
    model: nn.Module,
    optimizer: optim.Optimizer,
    loader: DataLoader,
    progress: Any,
    timer: StepTimer,
    straggler: Straggler | None = None,
) -> float:
    """One pass over ``loader``; returns the mean training loss on this rank.

    ``straggler`` (``--straggler``) sleeps each step on its rank, before the step's update.
    """
    model.train()
    total, steps = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad()
        began = time.perf_counter()
        with timer.span("forward"):
            loss = F.cross_entropy(model(x), y)
        forward_done = time.perf_counter()
        with timer.span("backward"):
            loss.backward()
        timer.forward += forward_done - began
        timer.backward += time.perf_counter() - forward_done
        timer.steps += 1
        if straggler is not None:
            straggler.step()
        optimizer.step()
        total += loss.item()
        steps += 1
        progress.update(1)
        progress.set_postfix(loss=f"{total / steps:.4f}", refresh=False)
    return total / max(steps, 1)


def save_checkpoint(
    path: Path, model, optimizer, scheduler, epoch: int, history: list[dict]
) -> None:
    """Everything needed to continue after ``epoch``: weights, optimizer, schedule, RNG, history."""
    minidl.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler else {},
            "epoch": epoch,
            "rng": minidl.random.generator().bit_generator.state,
            "history": history,
        },
        path,
    )


def load_checkpoint(
    path: Path, model, optimizer, scheduler, say: Callable[..., None] = print
) -> tuple[int, list[dict]]:
    """Restore a checkpoint into ``model``, ``optimizer`` and ``scheduler``; returns (epoch,
    history).

    ``say`` reports the epoch it resumes after, and the schedule when it
    moves: the schedule continues on this run's horizon (``--epochs``), not
    the checkpoint's. A checkpoint of another ``--schedule`` is refused.
    """
    try:
        state = minidl.load(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule, change = _schedule_on_this_horizon(state["scheduler"], scheduler, path)
        if scheduler:
            scheduler.load_state_dict(schedule)
        minidl.random.generator().bit_generator.state = state["rng"]
        epoch, history = int(state["epoch"]), list(state["history"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot resume from checkpoint {path}: {exc}") from None
    say(f"resumed from {path} after epoch {epoch}")
    if change:
        say(f"{change}; continuing on this run's, at lr {scheduler.get_last_lr()[0]:.4g}")
    return epoch, history


#: The scheduler attribute that ``--epochs`` sets, for each ``--schedule``.
_HORIZON = {"cosine": "T_max", "step": "step_size"}


def _schedule_name(state: dict) -> str:
    """The ``--schedule`` whose scheduler has this state (``{}`` for none)."""
    return next((name for name, key in _HORIZON.items() if key in state), "none")


def _describe_schedule(name: str, state: dict) -> str:
    """A schedule in words, e.g. ``a cosine over 20 epochs``."""
    if name == "cosine":
        return f"a cosine over {state['T_max']} epochs"
    every = "epoch" if state["step_size"] == 1 else f"{state['step_size']} epochs"
    return f"x{state['gamma']:g} every {every}"


def _schedule_on_this_horizon(saved: dict, scheduler, path: Path) -> tuple[dict, str | None]:
    """The checkpoint's scheduler state moved onto this run's ``--epochs`` horizon, and the
    change in words (None if there is none).

    A student who trained 20 epochs and resumes with ``--epochs 30`` means
    "train on to 30": the schedule they asked for is the one over 30 epochs.
    On the checkpoint's own, the learning rate would have reached 0 at epoch
    20 and then, past the end of its cosine, climbed back up: ten epochs on a
    schedule nobody chose. So the epoch count and the state come from the
    checkpoint and the horizon from this run, and the change is printed. A
    run resumed with the ``--epochs`` it started with is untouched, and ends
    exactly where it would have without stopping.
    """
    saved_name = _schedule_name(saved)
    this = scheduler.state_dict() if scheduler else {}
    this_name = _schedule_name(this)
    if saved_name != this_name:
        raise UsageError(
            f"cannot resume from checkpoint {path}: it was saved with --schedule {saved_name}, "
            f"this run has --schedule {this_name} (give --schedule {saved_name} to continue it)"
        )
    key = _HORIZON.get(this_name)
    if key is None or saved[key] == this[key]:
        return saved, None
    moved = {**saved, key: this[key]}
    change = (
        f"learning-rate schedule: the checkpoint's is {_describe_schedule(saved_name, saved)}, "
        f"this run's --epochs makes it {_describe_schedule(this_name, moved)}"
    )
    return moved, change


def plot_history(history: list[dict], path: Path) -> None:
    """Training loss, test loss and test accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [row["loss"] for row in history], marker="o", label="train")
    ax1.plot(epochs, [row["test_loss"] for row in history], marker="o", label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    ax1.legend()
    ax2.plot(epochs, [row["accuracy"] for row in history], marker="o", color="C2")
    ax2.set(xlabel="epoch", ylabel="test accuracy", title="accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, float]:
    """Train as the flags say; print progress and the final lines; return the final metrics."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    # A rank that stops joining in (killed by the kernel, stuck) must not leave the
    # others waiting for ever, silently: they end the job and say where they waited.
    set_timeout(args.timeout or None)
    comm, rank, world_size = parallel_setup(args)
    threads = threads_per_process(args, world_size)
    if threads:
        kernels.set_num_threads(threads)
        threadpool_limits(threads, user_api="blas")
    if args.kernels is not None:
        kernels.use(args.kernels)
    minidl.manual_seed(args.seed)
    straggler = build_straggler(args, comm)
    if args.parallel == "ps":
        return run_parameter_server(args, comm, straggler)
    if args.parallel == "hogwild":
        return run_hogwild(args, comm, straggler)
    train, test = load_data(args)
    model = build_model(args.model, tuple(train[0][0].shape))
    grid = None
    if args.parallel == "pipeline":
        grid, model = build_pipeline(args, model)  # this rank's stage: its layers only
    optimizer = build_optimizer(args, model)
    scheduler = build_schedule(args, optimizer)
    say = print if rank == 0 else _silent

    start_epoch, history = 0, []
    if args.resume and args.checkpoint.exists():
        start_epoch, history = load_checkpoint(args.checkpoint, model, optimizer, scheduler, say)
    elif args.resume:
        say(f"no checkpoint at {args.checkpoint}: starting from epoch 1")

    timeline = Timeline(rank, enabled=False) if args.trace else None
    trace = Trace() if args.trace else None
    net = model
    if grid is not None:
        net.timeline = timeline
    if args.parallel == "ddp":
        net = DistributedDataParallel(
            model,
            comm=comm,
            algorithm=args.algorithm,
            bucket_cap_mb=args.bucket_cap_mb,
            overlap=not args.no_overlap,
            timeline=timeline,
        )
    timer = StepTimer(timeline)

    seconds = []
    # The data's shards: one per rank with DDP, one per pipeline replica (its stages share it).
    shard, shards = (grid.dp_rank, grid.dp) if grid is not None else (rank, world_size)
    for epoch in range(start_epoch + 1, args.epochs + 1):
        loader = epoch_loader(train, args, epoch, shard, shards)
        if timeline is not None and epoch == args.epochs:
            loader = _traced(loader, net, timeline, trace, steps=10)
        with tqdm(
            total=len(loader),
            desc=f"epoch {epoch}/{args.epochs}",
            leave=False,
            disable=args.no_progress or rank != 0,
            file=sys.stderr,
        ) as progress:
            began = time.perf_counter()
            if grid is not None:
                train_loss = train_epoch_pipeline(net, optimizer, loader, progress, straggler)
            else:
                train_loss = train_epoch(net, optimizer, loader, progress, timer, straggler)
            seconds.append(time.perf_counter() - began)
        if scheduler:
            scheduler.step()
        if comm is not None:
            train_loss = comm.allreduce(train_loss) / world_size
        test_loss, accuracy = evaluate(model, test)
        row = {
            "epoch": epoch,
            "loss": train_loss,
            "test_loss": test_loss,
            "accuracy": accuracy,
            "seconds": seconds[-1],
        }
        history.append(row)
        say(
            f"epoch {epoch:3d}  loss {train_loss:.4f}  test loss {test_loss:.4f}  "
            f"test accuracy {accuracy:.4f}  {seconds[-1]:.2f} s"
        )
        if rank == 0 and args.metrics:
            with open(args.metrics, "a") as f:
                f.write(json.dumps(row) + "\n")
        if rank == 0 and args.checkpoint:
            save_checkpoint(args.checkpoint, model, optimizer, scheduler, epoch, history)

    if comm is not None:
        if grid is not None:
            report_pipeline_breakdown(net, grid, comm, say)
        else:
            report_breakdown(net, timer, comm, say)
        if args.trace:
            timeline.to_chrome(args.trace, comm, trace)
            say(f"trace of all ranks written to {args.trace} (open it in https://ui.perfetto.dev)")
        if grid is None:
            net.close()
    if rank == 0 and args.plot and history:
        plot_history(history, args.plot)
    final = history[-1] if history else {"accuracy": float("nan")}
    per_epoch = float(np.mean(seconds)) if seconds else 0.0
    say(f"test accuracy: {final['accuracy']:.4f}")
    say(f"time per epoch: {per_epoch:.2f} s")
    return {"accuracy": final["accuracy"], "seconds_per_epoch": per_epoch}


def build_pipeline(args: argparse.Namespace, model: nn.Module) -> tuple[ProcessGrid, Pipeline]:
    """The grid of ranks the flags ask for, and this rank's stage of ``model`` (collective).

    The flags were checked against the model in :func:`check_pipeline_args`.
    """
    grid = ProcessGrid(dp=args.dp, pp=args.stages, tp=args.tp)
    if args.tp > 1:
        model = parallelize_linears(model, grid.tp_comm)
    pipe = Pipeline(model, comm=grid.pp_comm, micro_batches=args.micro_batches,
                    schedule=args.pipeline_schedule, split=args.split, chunks=args.chunks,
                    dp_comm=grid.dp_comm)
    return grid, pipe


def train_epoch_pipeline(pipe: Pipeline, optimizer: optim.Optimizer, loader: DataLoader,
                         progress: Any, straggler: Straggler | None = None) -> float:
    """One pass over ``loader`` through the pipeline; returns the mean training loss.

    ``straggler`` (``--straggler``) sleeps before each step on its rank (its stage waits,
    and the stages after it wait for it).

    A last batch with fewer samples than micro-batches is left out (the
    schedule has a micro-batch for each): at most ``micro_batches - 1`` samples
    an epoch.
    """
    pipe.train()
    total, steps = 0.0, 0
    for x, y in loader:
        if len(y) < pipe.micro_batches:  # an epoch's last, short batch: too few to cut
            progress.update(1)
            continue
        optimizer.zero_grad()
        if straggler is not None:
            straggler.step()
        total += pipe.step(x.data, y.data, F.cross_entropy)  # the same on every rank
        optimizer.step()
        steps += 1
        progress.update(1)
        progress.set_postfix(loss=f"{total / steps:.4f}", refresh=False)
    return total / max(steps, 1)


def report_pipeline_breakdown(pipe: Pipeline, grid: ProcessGrid, comm: Any, say: Any) -> None:
    """Print, on rank 0, where each rank's time went in an average step of the pipeline."""
    stats, steps = pipe.stats, max(pipe.stats.steps, 1)
    seconds = stats.seconds
    mine = [grid.dp_rank, grid.pp_rank, grid.tp_rank,
            seconds.get("forward", 0.0) / steps, seconds.get("backward", 0.0) / steps,
            (seconds.get("send_forward", 0.0) + seconds.get("send_backward", 0.0)) / steps,
            stats.bubble / steps, stats.peak_in_flight]
    everyone = comm.gather(mine, root=0)
    if everyone is None:
        return
    say(f"per-rank breakdown of one step (mean over {stats.steps} steps; {pipe.schedule} "
        f"schedule, {pipe.micro_batches} micro-batches, dp {grid.dp} x stages {grid.pp} x tp "
        f"{grid.tp}; waiting: time in receives and for sends to be taken, the bubble):")
    say(f"{'rank':>4s} {'dp':>3s} {'stage':>5s} {'tp':>3s} {'forward ms':>11s} "
        f"{'backward ms':>12s} {'posting ms':>11s} {'waiting ms':>11s} {'held':>5s}")
    for r, (d, s, t, fwd, bwd, post, wait, held) in enumerate(everyone):
        say(f"{r:4d} {d:3d} {s:5d} {t:3d} {fwd * 1e3:11.3f} {bwd * 1e3:12.3f} "
            f"{post * 1e3:11.3f} {wait * 1e3:11.3f} {held:5d}")


def run_parameter_server(args: argparse.Namespace, comm: Any,
                         straggler: Straggler | None = None) -> dict[str, float]:
    """``--parallel ps``: the first ``--servers`` ranks serve, the others train and push.

    The first worker prints, evaluates each epoch (after pulling) and writes
    the metrics. The servers apply ``--schedule`` on their own clock: the
    factor of an epoch (:func:`epoch_lr_factors`) for each epoch's worth of
    updates, ``steps_per_epoch`` of them in sync and SSP (one per step),
    ``steps_per_epoch x workers`` in async (one per push); so sync with one
    worker trains as one process does. At the end every rank sends its
    statistics to the first worker, which prints the staleness of the
    gradients the servers applied.
    """
    from tqdm import tqdm

    rank = comm.Get_rank()
    train, test = load_data(args)
    model = build_model(args.model, tuple(train[0][0].shape))
    workers = comm.Get_size() - args.servers
    # The servers' clock: one update per step in sync and SSP, one per push in async.
    steps_per_epoch = len(epoch_loader(train, args, 1, 0, workers))
    updates_per_epoch = steps_per_epoch * (workers if args.ps_mode == "async" else 1)
    factors = epoch_lr_factors(args)
    ps = ParameterServer(model, comm=comm, servers=args.servers, mode=args.ps_mode,
                         staleness=args.staleness, optimizer=args.optimizer, lr=args.lr,
                         momentum=args.momentum if args.optimizer == "sgd" else 0.0,
                         weight_decay=args.weight_decay,
                         lr_schedule=lambda t: factors[min(t // updates_per_epoch,
                                                           len(factors) - 1)])
    leader = args.servers  # the first worker: it prints
    say = print if rank == leader else _silent
    say(f"parameter servers: {args.servers} servers, {len(ps.workers)} workers, "
        f"mode {args.ps_mode}{f' (staleness {args.staleness})' if args.ps_mode == 'ssp' else ''}"
        f"; learning rate {args.lr}, schedule {args.schedule} stepped every "
        f"{updates_per_epoch} updates of the servers (an epoch's)")
    history, seconds = [], []
    if ps.is_server:
        ps.serve()
    else:
        for epoch in range(1, args.epochs + 1):
            loader = epoch_loader(train, args, epoch, rank - args.servers, len(ps.workers))
            began, total = time.perf_counter(), 0.0
            with tqdm(total=len(loader), desc=f"epoch {epoch}/{args.epochs}", leave=False,
                      disable=args.no_progress or rank != leader, file=sys.stderr) as progress:
                for x, y in loader:
                    ps.pull()
                    model.zero_grad()
                    loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    if straggler is not None:
                        straggler.step()
                    ps.push()
                    total += loss.item()
                    progress.update(1)
            seconds.append(time.perf_counter() - began)
            if rank == leader:
                ps.pull()  # the parameters as they are now, to evaluate
                test_loss, accuracy = evaluate(model, test)
                row = {"epoch": epoch, "loss": total / max(len(loader), 1),
                       "test_loss": test_loss, "accuracy": accuracy, "seconds": seconds[-1]}
                history.append(row)
                say(f"epoch {epoch:3d}  loss {row['loss']:.4f}  test loss {test_loss:.4f}  "
                    f"test accuracy {accuracy:.4f}  {seconds[-1]:.2f} s")
                if args.metrics:
                    with open(args.metrics, "a") as f:
                        f.write(json.dumps(row) + "\n")
        ps.pull()
        ps.close()
    everyone = comm.gather((ps.is_server, ps.stats), root=leader)
    if rank == leader:
        report_staleness(everyone, say)
        if args.plot and history:
            plot_history(history, args.plot)
    final = history[-1] if history else {"accuracy": float("nan")}
    per_epoch = float(np.mean(seconds)) if seconds else 0.0
    say(f"test accuracy: {final['accuracy']:.4f}")
    say(f"time per epoch: {per_epoch:.2f} s")
    return {"accuracy": final["accuracy"], "seconds_per_epoch": per_epoch}


def build_straggler(args: argparse.Namespace, comm: Any) -> Straggler | None:
    """``--straggler``'s :class:`~minidl.parallel.Straggler` (None without the flag).

    Its rank is one of ``MPI.COMM_WORLD``, in every mode (with ``--parallel
    none``, each of several launched ranks trains alone, and the one named sleeps).
    """
    if args.straggler is None:
        return None
    if comm is None:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    return Straggler(*args.straggler, comm=comm)


def run_hogwild(args: argparse.Namespace, comm: Any,
                straggler: Straggler | None = None) -> dict[str, float]:
    """``--parallel hogwild``: every rank trains on its own data, all on shared parameters.

    Each rank takes every ``P``-th sample of the epoch's order, in batches of
    ``--batch-size``, and applies its own optimizer's update (its own
    momentum, its own schedule stepped per epoch) straight into the shared
    parameters: together the ranks make as many updates an epoch as one
    process. Rank 0 prints its own training loss and evaluates the shared
    parameters when it ends an epoch, while the others may still be writing
    (no rank waits for another); the last epoch is evaluated once every rank
    has finished. Then each rank's updates and lock waits are printed.
    """
    from tqdm import tqdm

    rank, size = comm.Get_rank(), comm.Get_size()
    train, test = load_data(args)
    model = build_model(args.model, tuple(train[0][0].shape))
    try:
        hogwild = Hogwild(model, comm=comm, lock=args.lock)
    except ValueError as exc:  # ranks on several nodes, which only MPI could tell
        raise UsageError(f"--parallel hogwild: {exc}") from None
    optimizer = build_optimizer(args, model)
    scheduler = build_schedule(args, optimizer)
    say = print if rank == 0 else _silent
    say(f"hogwild: {size} ranks share the parameters (one node), updates "
        f"{'one at a time, under the lock' if args.lock else 'unlocked, racing'}; each rank "
        f"takes 1/{size} of the data in batches of {args.batch_size}; each epoch's line: rank "
        "0's loss, and the shared parameters when rank 0 ended it")
    history, seconds = [], []
    for epoch in range(1, args.epochs + 1):
        loader = epoch_loader(train, args, epoch, rank, size, batch_size=args.batch_size)
        began, total = time.perf_counter(), 0.0
        with tqdm(total=len(loader), desc=f"epoch {epoch}/{args.epochs}", leave=False,
                  disable=args.no_progress or rank != 0, file=sys.stderr) as progress:
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                if straggler is not None:
                    straggler.step()
                hogwild.step(optimizer)
                total += loss.item()
                progress.update(1)
        seconds.append(time.perf_counter() - began)
        if scheduler:
            scheduler.step()
        if epoch == args.epochs:
            hogwild.close()  # collective: waits for every rank's last update
        if rank == 0:
            test_loss, accuracy = evaluate(model, test)
            row = {"epoch": epoch, "loss": total / max(len(loader), 1), "test_loss": test_loss,
                   "accuracy": accuracy, "seconds": seconds[-1]}
            history.append(row)
            say(f"epoch {epoch:3d}  loss {row['loss']:.4f}  test loss {test_loss:.4f}  "
                f"test accuracy {accuracy:.4f}  {seconds[-1]:.2f} s")
            if args.metrics:
                with open(args.metrics, "a") as f:
                    f.write(json.dumps(row) + "\n")
    everyone = comm.gather(hogwild.stats, root=0)
    if rank == 0:
        say("hogwild updates per rank (update ms: one update's mean time, the lock's included; "
            "lock wait s: in all, waiting for the lock while another rank updated):")
        say(f"{'rank':>4s} {'updates':>8s} {'update ms':>10s} {'lock wait s':>12s}")
        for r, stats in enumerate(everyone):
            mean_ms = stats.update_seconds / max(stats.updates, 1) * 1e3
            say(f"{r:4d} {stats.updates:8d} {mean_ms:10.3f} {stats.lock_seconds:12.3f}")
        if args.plot and history:
            plot_history(history, args.plot)
    final = history[-1] if history else {"accuracy": float("nan")}
    per_epoch = float(np.mean(seconds)) if seconds else 0.0
    say(f"test accuracy: {final['accuracy']:.4f}")
    say(f"time per epoch: {per_epoch:.2f} s")
    return {"accuracy": final["accuracy"], "seconds_per_epoch": per_epoch}


def report_staleness(everyone: list[tuple[bool, Any]], say: Any) -> None:
    """Print the staleness of every gradient the servers applied, and each rank's waiting."""
    counts: dict[int, int] = {}
    for is_server, stats in everyone:
        if is_server:
            for age, n in stats.staleness.items():
                counts[age] = counts.get(age, 0) + n
    applied = sum(counts.values())
    mean = sum(age * n for age, n in counts.items()) / max(applied, 1)
    shown = ", ".join(f"{age}: {counts[age]}" for age in sorted(counts)[:12])
    more = ", ..." if len(counts) > 12 else ""
    say(f"staleness of the {applied} gradients applied (updates between a worker's pull and "
        f"the apply; count): {shown}{more}; mean {mean:.2f}, max {max(counts, default=0)}")
    say(f"{'rank':>4s} {'role':>7s} {'pushes':>7s} {'pulls':>6s} {'waiting s':>10s}")
    for r, (is_server, stats) in enumerate(everyone):
        say(f"{r:4d} {'server' if is_server else 'worker':>7s} {stats.pushes:7d} "
            f"{stats.pulls:6d} {stats.waiting:10.3f}")


def _silent(*args: Any, **kwargs: Any) -> None:
    """``print`` for every rank but 0."""


def parallel_setup(args: argparse.Namespace) -> tuple[Any, int, int]:
    """``(comm, rank, world_size)``: ``comm`` is None with ``--parallel none``."""
    if args.parallel == "none":
        return None, 0, 1
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    world_size = comm.Get_size()
    if args.parallel == "ddp" and args.batch_size % world_size:
        raise UsageError(
            f"--batch-size {args.batch_size} does not split evenly over {world_size} ranks"
        )
    return comm, comm.Get_rank(), world_size


def _traced(loader: DataLoader, net: Any, timeline: Timeline, trace: Trace, steps: int) -> Any:
    """Yield ``loader``'s batches, recording the timeline and messages of the first ``steps``."""

    class Traced:
        def __len__(self) -> int:
            return len(loader)

        def __iter__(self):
            for i, batch in enumerate(loader):
                recording = i < steps
                timeline.enabled = recording
                net.trace = trace if recording else None
                yield batch
            timeline.enabled = False
            net.trace = None

    return Traced()


def report_breakdown(net: DistributedDataParallel, timer: StepTimer, comm: Any, say: Any) -> None:
    """Print, on rank 0, where each rank's time went in an average step.

    The columns are :class:`~minidl.parallel.CommStats`' (see it for what
    each measures): waiting includes the time blocked on the slowest rank,
    not only communication that overlap did not hide, so it may exceed
    the communication time on every rank.
    """
    stats = net.stats
    steps = max(timer.steps, 1)
    mine = [
        timer.forward,
        timer.backward - stats.wait_seconds,
        stats.comm_seconds,
        stats.wait_seconds,
        stats.bytes_sent,
    ]
    everyone = comm.gather([v / steps for v in mine], root=0)
    if everyone is None:
        return
    say(
        f"per-rank breakdown of one step (mean over {timer.steps} steps; "
        f"algorithm {net.algorithm}, {len(net.buckets)} buckets, "
        f"overlap {'on' if net.overlap else 'off'}):"
    )
    say("  comm ms: time in the calls that move the all-reduces (during backward and at its "
        "end); it overlaps the other columns, it does not add to them")
    say("  waiting ms: backward's end, until the gradients are averaged: waiting for the "
        "slowest rank to finish its backward, for all-reduces that overlap did not hide, and "
        "the all-reduces left to do then (also in comm); so it can exceed comm")
    say("  backward ms: backward without that end")
    say(
        f"{'rank':>4s} {'forward ms':>11s} {'backward ms':>12s} {'comm ms':>8s} "
        f"{'waiting ms':>11s} {'sent KiB':>9s}"
    )
    for r, (fwd, bwd, comm_s, wait, sent) in enumerate(everyone):
        say(
            f"{r:4d} {fwd * 1e3:11.3f} {bwd * 1e3:12.3f} {comm_s * 1e3:8.3f} "
            f"{wait * 1e3:11.3f} {sent / 1024:9.1f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m minidl.train``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        check_args(args)
        run(args)
    except UsageError as exc:
        print(f"python -m minidl.train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
