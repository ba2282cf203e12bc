"""``Hogwild``: every rank of one node updates the same parameters in shared memory, unlocked.

Hogwild! (Niu, Recht, Ré and Wright, 2011) is asynchronous SGD with no
server and no messages: the parameters sit in memory that every worker can
write, and each worker reads them, computes a gradient on its own batch and
writes its update, without asking anyone. Two workers may update the same
element at once and one of the two updates is lost (a read-increment-write
race); for sparse or small updates that happens rarely enough that SGD
converges anyway, and no worker ever waits.

On one node, MPI-3 gives ranks memory they share (``MPI.Win.Allocate_shared``
on the ranks that ``comm.Split_type(MPI.COMM_TYPE_SHARED)`` puts together):
:class:`Hogwild` puts all the model's parameters in one such window and makes
each parameter's ``.data`` a NumPy view into it. The model, its optimizer and
``state_dict`` go on working unchanged; every rank's ``optimizer.step()``
now writes into the same memory. With ``lock=True`` each update holds the
window's exclusive lock (``Win.Lock(0, MPI.LOCK_EXCLUSIVE)``): one rank
updates at a time, no update is lost, and ranks wait for each other. A
rank's loop, under ``mpiexec -n P python -m mpi4py``::

    hogwild = Hogwild(model)                    # collective: rank 0's weights, shared
    optimizer = optim.SGD(model.parameters(), lr=0.05)   # this rank's own
    for x, y in my_batches:                     # each rank its own data
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        hogwild.step(optimizer)                 # optimizer.step(), counted (and locked)
    hogwild.close()                             # collective: waits, copies out, frees

:func:`shared_counter_race` shows the race on the smallest possible example:
several ranks add 1 to one shared number, many times; unlocked, the total
usually comes out short.

Shared memory is one node's: a communicator whose ranks live on several
nodes is refused (use :class:`~minidl.parallel.ParameterServer` or
:class:`~minidl.parallel.DistributedDataParallel` across nodes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from minidl.distributed.watchdog import watching
from minidl.distributed.world import mpi_module, world
from minidl.nn.module import Module
from minidl.optim import Optimizer
from minidl.parallel.comm import wait_politely


@dataclass
class HogwildStats:
    """What one rank of a :class:`Hogwild` did.

    Attributes
    ----------
    updates : int
        Updates this rank wrote into the shared parameters (its :meth:`Hogwild.step` calls).
    update_seconds : float
        Seconds spent in those updates (the optimizer's step, under the lock if there is one).
    lock_seconds : float
        Seconds spent acquiring the lock (``lock=True`` only): waiting for other ranks' updates.
    """

    updates: int = 0
    update_seconds: float = 0.0
    lock_seconds: float = 0.0


def _node_of(comm: Any, who: str) -> Any:
    """The ranks of ``comm`` that share this rank's memory; a ValueError on every rank if that
    is not all of them (collective)."""
    MPI = mpi_module()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    if node.Get_size() != comm.Get_size():
        here, size = node.Get_size(), comm.Get_size()
        node.Free()
        raise ValueError(
            f"{who}: comm has {size} ranks, but only {here} of them share memory with rank "
            f"{comm.Get_rank()} (MPI's COMM_TYPE_SHARED split): the ranks span several nodes, "
            "and shared memory is one node's. Run every rank on one node, or use "
            "ParameterServer or DistributedDataParallel across nodes")
    return node


def _allocate(node: Any, nbytes: int, itemsize: int) -> tuple[Any, Any]:
    """One shared window of ``nbytes`` on ``node``: ``(window, its memory)`` (collective).

    The node's rank 0 allocates it all, the others nothing, and everyone asks
    where rank 0's part is (``Shared_query(0)``): one contiguous buffer.
    """
    MPI = mpi_module()
    mine = nbytes if node.Get_rank() == 0 else 0
    win = MPI.Win.Allocate_shared(mine, itemsize, comm=node)
    memory, _ = win.Shared_query(0)
    return win, memory


def _barrier(win: Any, node: Any, what: str) -> None:
    """Wait for every rank of ``node``, with every store before it seen by every load after it.

    ``Win.Sync`` is the memory barrier of a shared window (MPI-3's unified
    memory model); MPI lets it be called only inside a passive-target
    epoch, hence the short ``Lock_all`` around it.
    """
    MPI = mpi_module()
    win.Lock_all(MPI.MODE_NOCHECK)
    try:
        win.Sync()
        wait_politely(node.Ibarrier(), what=what)
        win.Sync()
    finally:
        win.Unlock_all()


class Hogwild:
    """Put ``model``'s parameters in memory shared by every rank of ``comm``; update it unlocked.

    Collective to construct: every rank of ``comm`` passes a model with the
    same parameter shapes (checked). Rank 0's initial values are copied into
    the shared memory, and every rank waits for that before it returns, so
    all start from the same weights. Then each rank trains on its own
    batches and, where it would call ``optimizer.step()``, calls
    :meth:`step` with its optimizer (its own: momentum or Adam's moments stay
    private to the rank; the parameters do not).

    Parameters
    ----------
    model : Module
        Every rank builds it; its parameters' ``.data`` become views into the
        shared window (the model keeps working as before).
    comm : mpi4py.MPI.Intracomm, optional
        None means ``MPI.COMM_WORLD``. Every rank must be on one node.
    lock : bool, default False
        False: Hogwild!, updates race. True: each :meth:`step` holds the
        window's exclusive lock (``Win.Lock(0, MPI.LOCK_EXCLUSIVE)``), so
        updates happen one at a time and none is lost (see Notes).

    Attributes
    ----------
    comm : mpi4py.MPI.Intracomm
        The ranks that share the parameters (``comm``'s node, in ``comm``'s order).
    rank, size : int
        This rank in :attr:`comm`, and its size.
    lock : bool
    flat : numpy.ndarray
        The shared parameters, flattened, in ``model.parameters()`` order; each
        parameter's ``.data`` is a view into it.
    stats : HogwildStats

    Raises
    ------
    ValueError
        If ``comm``'s ranks span several nodes (naming both sizes), the
        model has no parameters, its parameters are not all of one floating
        dtype, or another rank's model has other shapes.

    Notes
    -----
    Passive-target locks are valid on any window, shared ones included
    (MPI-3.1, section "Lock"). The standard lets an implementation acquire
    a lock lazily, at the first RMA call inside it, which would not guard
    plain loads and stores; MPICH acquires it in ``Win.Lock`` on a shared
    window, and the tests check that no update is lost under it. On an MPI
    that acquires lazily, the portable lock is a mutex made of
    ``Compare_and_swap`` on a window held in a ``Lock_all`` epoch. Inside
    the lock, ``Win.Sync`` (the memory barrier of the unified memory model)
    makes the last holder's stores visible.

    :meth:`close` frees the window; it is collective. It is never called at
    interpreter exit (what each rank still holds then depends on its garbage
    collector, and a collective there can hang): a window not closed is
    released by ``MPI_Finalize``.
    """

    def __init__(self, model: Module, comm: Any = None, lock: bool = False) -> None:
        comm = world(comm, "Hogwild")
        if not isinstance(lock, bool):
            raise TypeError(f"Hogwild: lock must be True or False, got {lock!r}")
        params = list(model.parameters())
        if not params:
            raise ValueError(f"Hogwild: {type(model).__name__} has no parameters to share")
        dtypes = sorted({str(q.data.dtype) for q in params})
        if len(dtypes) != 1 or not np.issubdtype(params[0].data.dtype, np.floating):
            raise ValueError(f"Hogwild: every parameter must have one floating dtype, got "
                             f"{', '.join(dtypes)}")
        self.params, self.lock, self.stats = params, lock, HogwildStats()
        dtype = params[0].data.dtype
        shapes = [q.data.shape for q in params]
        with watching(f"Hogwild's construction on {comm.Get_size()} ranks (collective)"):
            everyone = comm.allgather((shapes, dtypes[0], lock))  # once, small: pickling is fine
            for rank, theirs in enumerate(everyone):
                if theirs != everyone[0]:
                    raise ValueError(
                        f"Hogwild: rank {rank} has {len(theirs[0])} parameters of dtype "
                        f"{theirs[1]} and lock={theirs[2]}, rank 0 {len(everyone[0][0])} of "
                        f"{everyone[0][1]} and lock={everyone[0][2]} (or other shapes): pass the "
                        "same model and arguments on every rank")
            self.comm = _node_of(comm, "Hogwild")
            self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
            n = sum(q.data.size for q in params)
            self.win, memory = _allocate(self.comm, n * dtype.itemsize, dtype.itemsize)
            self.flat = np.ndarray((n,), dtype, buffer=memory)
            if self.rank == 0:
                self.flat[...] = np.concatenate([q.data.reshape(-1) for q in params])
            _barrier(self.win, self.comm, "Hogwild: rank 0 copying the weights in")
        self._views = []
        offset = 0
        for q in params:
            q.data = self.flat[offset : offset + q.data.size].reshape(q.data.shape)
            self._views.append(q.data)
            offset += q.data.size
        self.closed = False

    def step(self, optimizer: Optimizer) -> None:
        """``optimizer.step()`` on the shared parameters: racing, or under the lock.

        Call it where a single process calls ``optimizer.step()``. The
        optimizer must update parameters in place (minidl's SGD, Adam and
        AdamW do); one that replaces a parameter's ``.data`` is caught.
        """
        if self.closed:
            raise RuntimeError(f"Hogwild.step on rank {self.rank}: closed; the parameters are "
                               "no longer shared")
        started = time.perf_counter()
        if self.lock:
            MPI = mpi_module()
            self.win.Lock(0, MPI.LOCK_EXCLUSIVE)
            locked = time.perf_counter()
            self.stats.lock_seconds += locked - started
            try:
                self.win.Sync()  # see the last holder's stores
                optimizer.step()
                self.win.Sync()  # and let the next holder see ours
            finally:
                self.win.Unlock(0)
        else:
            optimizer.step()
        self.stats.update_seconds += time.perf_counter() - started
        self.stats.updates += 1
        moved = [i for i, (q, v) in enumerate(zip(self.params, self._views)) if q.data is not v]
        if moved:
            raise RuntimeError(f"Hogwild.step on rank {self.rank}: the optimizer replaced the "
                               f".data of parameters {moved} instead of updating it in place, "
                               "so its update never reached the shared memory")

    def close(self) -> None:
        """Give every parameter a private copy of its shared values and free the window.

        Collective: every rank of :attr:`comm` calls it (after its last
        :meth:`step`; it waits for the others first, so the values it copies
        are final). The model goes on working, on private memory. Closing
        twice does nothing.
        """
        if self.closed:
            return
        with watching("Hogwild.close() (collective: every rank closes)"):
            _barrier(self.win, self.comm, "Hogwild.close: every rank's last update")
            for q in self.params:
                q.data = np.array(q.data)  # a copy: the window's memory is about to go
            self._views = []
            self.flat = self.flat.copy()
            self.win.Free()
            self.comm.Free()
        self.closed = True

    def __repr__(self) -> str:
        state = "closed" if self.closed else (f"{len(self.params)} parameters "
                                               f"({self.flat.size} values) shared")
        return (f"<Hogwild rank {self.rank} of {self.size}: {state}, lock={self.lock}, "
                f"{self.stats.updates} updates>")


def shared_counter_race(increments: int, comm: Any = None, lock: bool = False) -> int:
    """Every rank adds 1 to one shared counter ``increments`` times; return the final count.

    Collective (every rank of ``comm``, on one node, calls it with the same
    arguments), and the same count is returned on every rank. Each addition
    is a read, then a write of the value read plus one: two separate memory
    operations, as ``p.data -= lr * g`` is for each element of a parameter.
    Without the lock, two ranks that read the same value both write
    value + 1, and one addition is lost: the count usually comes out below
    ``increments x ranks`` (how far depends on how often the ranks run at
    the same moment; one rank alone, or ranks taking turns on one core, may
    lose none). With ``lock=True`` every addition holds the window's
    exclusive lock and the count is exact.

    Parameters
    ----------
    increments : int
        Additions per rank, >= 0.
    comm : mpi4py.MPI.Intracomm, optional
        None means ``MPI.COMM_WORLD``. Every rank must be on one node.
    lock : bool, default False

    Returns
    -------
    int
        The counter at the end; ``increments x comm.size`` if no addition was lost.

    Examples
    --------
    Under ``mpiexec -n 2``::

        lost = 2 * 100_000 - shared_counter_race(100_000)             # often > 0
        assert shared_counter_race(10_000, lock=True) == 2 * 10_000   # always
    """
    comm = world(comm, "shared_counter_race")
    if isinstance(increments, bool) or not isinstance(increments, (int, np.integer)) \
            or increments < 0:
        raise ValueError(f"shared_counter_race: increments must be an integer >= 0, "
                         f"got {increments!r}")
    MPI = mpi_module()
    node = _node_of(comm, "shared_counter_race")
    win, memory = _allocate(node, 8, 8)
    counter = np.ndarray((1,), np.int64, buffer=memory)
    if node.Get_rank() == 0:
        counter[0] = 0
    _barrier(win, node, "shared_counter_race: everyone starts from 0")
    for _ in range(increments):
        if lock:
            win.Lock(0, MPI.LOCK_EXCLUSIVE)
            win.Sync()
        value = counter[0]  # read ...
        counter[0] = value + 1  # ... and write: another rank may have written in between
        if lock:
            win.Sync()
            win.Unlock(0)
    _barrier(win, node, "shared_counter_race: every rank's last addition")
    count = int(counter[0])
    win.Free()  # collective; not in a finally: a rank that raised is not coming
    node.Free()
    return count
