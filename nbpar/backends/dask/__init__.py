"""nbpar on a Dask cluster: the same Boss and state machine; the workers are slots in the
caller, each running its batches as Dask tasks through a `distributed.Client`.

    Boss ──Func/Batch──► slot (a proxy thread) ──client.submit(run_batch)──► a Dask worker
         ◄─Done/Failed──                     ◄──── message, address, what it printed ─┘

A slot speaks the protocol of a local worker on an in-process channel (the thread backend's),
so the Boss, the state machine, the reports, the signals and the widget are those of a local
pool. A batch is ONE Dask task (items travel together; the results come back as one pickled
blob), and a slot keeps up to two in flight, so the round trip to the scheduler is hidden
behind the work; batches aim at `nbpar.batch-time` seconds (a Dask task costs milliseconds).

- Shared objects are scattered once to every worker (broadcast), never sent with a task;
  worker_init, worker_exit and worker state live per Dask worker (remote.py, `Seat`).
- HALT and STOP need nothing here: the Boss stops dispatching; running batches finish.
  A killed slot (STOP_RIGHTNOW, a task timeout, a failed map) cancels what has not started,
  flags its running batches to stop at the next item, and if one is still running after
  `nbpar.kill-grace` seconds, kills that Dask worker, which its nanny replaces.
- A Dask worker dying mid-batch is Dask's to handle: the batch runs again elsewhere, up to
  `distributed.scheduler.allowed-failures` times, then the map fails with WorkerDiedError.
  A cluster left without workers fails the map after `nbpar.no-workers-timeout` seconds:
  the slots look and say what they see; the state machine decides (nbpar/no_workers.py).

Settings are Dask config keys (config.py). slot.py is a slot; remote.py is what runs on the
Dask workers. Only this package imports dask.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import distributed

from ... import messages as m
from ... import worker
from ...errors import capture
from .. import WorkerHandle
from . import remote
from .config import setting
from .slot import Slot

_log = logging.getLogger(__name__)

_protected: weakref.WeakSet = weakref.WeakSet()  # clients whose workers ignore SIGINT


def connect(client):
    """(Client, owned): the client given, or one made for an address or a cluster."""
    if client is None:
        try:
            return distributed.default_client(), False
        except ValueError:
            raise ValueError("backend='dask' needs a Dask client: pass client=Client(...), a "
                             "cluster, or the scheduler's address ('tcp://host:8786')") from None
    if isinstance(client, distributed.Client):
        if client.status not in ("running", "connecting", "newly-created"):
            raise ValueError(f"the Dask client given is {client.status}, not running")
        return client, False
    if isinstance(client, str) or hasattr(client, "scheduler_address"):
        try:
            return distributed.Client(client, set_as_default=False), True
        except (OSError, TimeoutError) as exc:
            where = getattr(client, "scheduler_address", client)
            raise OSError(f"could not reach the Dask scheduler at {where}: {exc}") from exc
    raise TypeError(f"client must be a dask.distributed.Client, a cluster or a scheduler "
                    f"address, got a {type(client).__name__}")


class DaskBackend:
    """Slots served through a Dask client; see the module docstring."""

    can_kill = True  # a task that will not stop: its Dask worker is killed (nanny restarts it)

    def __init__(self, n_workers: int | None, shared_objects: Any, client: Any = None) -> None:
        self.client, self._owned = connect(client)
        try:
            _ignore_sigint(self.client)
            self.n_workers = n_workers or self._count_threads()
            self.min_batch_time = setting("batch-time")
            self.token = uuid.uuid4().hex
            self.shared = None
            self.apply(self.prepare(shared_objects))
        except BaseException:
            if self._owned:
                self.client.close()
            raise
        self.where: dict = {}  # slot id -> address of the Dask worker of its latest batch
        self.seated: dict = {}  # generation -> addresses where it has a seat
        self._lock = threading.Lock()
        self._gen = 0
        self._live = 0
        self._slots: set = set()
        self._refs: OrderedDict = OrderedDict()  # bytes -> scattered future (large bodies)

    # -- what the pool asks
    def _count_threads(self) -> int:
        timeout = setting("no-workers-timeout")
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, distributed.TimeoutError):
            raise TimeoutError(
                f"the Dask cluster at {self.client.scheduler.address} has no workers (waited "
                f"{timeout:g} s): start or scale its workers, or give n_jobs to start anyway "
                f"(an adaptive cluster scales up when work arrives)") from None
        return sum(self.client.nthreads().values())

    def annotate(self, report):
        """A report whose workers say which Dask worker ran their latest batch."""
        workers = tuple(replace(w, where=self.where.get(w.id)) for w in report.workers)
        return replace(report, workers=workers)

    # -- shared objects: scattered once to every worker
    def prepare(self, obj):
        """In the caller's thread: scatter now, so that pickling errors surface there."""
        if obj is None:
            return None
        [future] = self.client.scatter([obj], broadcast=True, hash=False)
        return obj, future

    def apply(self, prepared):
        old, self.shared = self.shared, prepared
        if old is not None:
            old[1].release()

    def shared_ref(self):
        """The scattered shared objects; scattered again if Dask lost them (every worker
        that held them died or was restarted)."""
        with self._lock:
            if self.shared is None:
                return None
            obj, future = self.shared
            if future.status != "finished":
                [future] = self.client.scatter([obj], broadcast=True, hash=False)
                self.shared = obj, future
            return future

    def ref(self, body):
        """A function or hooks for a task: the bytes, or for large ones a scattered copy
        (scattered again if lost)."""
        if body is None or len(body) <= setting("inline-bytes"):
            return body
        with self._lock:
            future = self._refs.get(body)
            if future is None or future.status != "finished":
                [future] = self.client.scatter([body], hash=False)
                self._refs[body] = future
                if len(self._refs) > 64:
                    self._refs.popitem(last=False)
            return future

    def use_hooks(self, hooks) -> bool:
        return False  # they go in each WorkerSetup, pickled once (the pool's _SetupFactory)

    # -- slots
    def extra_waitables(self):
        return []

    def on_extra_ready(self, obj) -> bool:
        return True  # (it has none to watch)

    def start(self, setup) -> WorkerHandle:
        with self._lock:
            if self._live == 0:  # a new generation: worker_init runs again
                self._gen += 1
                self.seated[self._gen] = set()
            self._live += 1
            gen = self._gen
        hooks = ({"pass_worker_id": setup.pass_worker_id, "use_shared": setup.use_shared,
                  "use_worker_state": setup.use_worker_state, "log_level": setup.log_level},
                 setup.worker_init, setup.worker_exit)
        slot = Slot(self, setup.worker_id, gen, hooks, setup.worker_exit is not None)
        with self._lock:
            self._slots.add(slot)
        slot.thread.start()
        return WorkerHandle(setup.worker_id, None, slot.boss_end, None,
                            {slot.out_r: "stdout", slot.err_r: "stderr"}, dask_slot=slot)

    def kill(self, handle) -> bool:
        """The slot ends now for the Boss; its thread stops its batches in the background."""
        slot = handle.dask_slot
        slot.ends.end()
        slot.killed = True
        slot.stale_seats = self.leave(slot)  # its thread drops them (no exits, as a kill)
        slot.inbox.put(None)
        return True

    def leave(self, slot):
        """Count a slot gone (once). The last of its generation gets the addresses where the
        generation has seats (for worker_exit, or to drop them); the others None."""
        with self._lock:
            if slot.left:
                return None
            slot.left = True
            self._live -= 1
            return None if self._live else self.seated.pop(slot.gen, set())

    def discard(self, slot):
        with self._lock:
            self._slots.discard(slot)

    def exitcode(self, handle, timeout=0):
        return 0

    def release(self, handle):
        for fd in (handle.channel.ends.r, *handle.outputs):
            try:
                os.close(fd)
            except OSError:
                _log.debug("closing fd %s of slot %s failed", fd, handle.worker_id,
                           exc_info=True)

    def position(self, worker_id):
        return 0

    # -- the end of a generation
    def run_exits(self, gen, addresses) -> list:
        """worker_exit on each Dask worker that has a seat of this generation, which it drops:
        [(Exited, output)]."""
        alive = set(self.client.nthreads())
        futures = [self.client.submit(remote.run_exit, self.token, gen, workers=[a],
                                      allow_other_workers=False, pure=False,
                                      key=f"nbpar-exit-{self.token}-{gen}-{i}")
                   for i, a in enumerate(sorted(addresses)) if a in alive]
        out = []
        for future in futures:
            try:
                result = future.result(timeout=setting("no-workers-timeout"))
            except Exception as exc:  # noqa: BLE001 - e.g. its worker died: reported
                result = (m.Exited(worker.dumps(None), capture(exc)), None)
            if result is not None:
                out.append(result)
        self.client.cancel(futures)
        return out

    def forget_seats(self, addresses, below=None):
        """Drop seats without exits (a dead worker is skipped: reaching it would time out)."""
        try:
            alive = set(addresses) & set(self.client.nthreads())
            if alive:
                self.client.run(remote.forget, self.token, below, workers=list(alive),
                                on_error="ignore")
        except Exception:  # noqa: BLE001 - a closed client holds no seats any more
            _log.debug("forgetting the seats of %s failed", addresses, exc_info=True)

    def close(self):
        with self._lock:
            slots = list(self._slots)
        for slot in slots:
            slot.inbox.put(None)
        deadline = time.monotonic() + setting("kill-grace") + 5.0
        for slot in slots:
            slot.thread.join(max(0.0, deadline - time.monotonic()))
        seats = set().union(*self.seated.values()) if self.seated else set()
        if seats:
            self.forget_seats(seats)
        self.apply(None)
        self._refs.clear()
        if self._owned:
            self.client.close()


def _ignore_sigint(client):
    """Workers in our process group (a LocalCluster's) ignore Jupyter's SIGINT (remote.py)."""
    if client in _protected:
        return
    client.register_plugin(remote.IgnoreSigint(socket.gethostname(), os.getpgrp()),
                           name=f"nbpar-ignore-sigint-{socket.gethostname()}-{os.getpgrp()}")
    _protected.add(client)
