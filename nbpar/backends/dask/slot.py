"""A slot: one of a Dask pool's workers as the Boss sees it, a thread of the caller.

It takes the Boss's messages on an in-process channel (the thread backend's) and answers as
a local worker does: each Batch becomes one Dask task (remote.run_batch), and when the task is
done, its Done or Failed message is posted back, after what the batch printed. Futures report
their end through the same inbox as the Boss's messages, so the thread waits in one place.

A slot observes and acts; it decides nothing. While its batches wait, it looks at the
cluster now and then and says what it sees (NoWorkers, WorkersBack); what an empty cluster
fails, and when, is the state machine's policy (nbpar/no_workers.py), which answers with a
Drop of the batches it failed.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import threading
import time

import dask
import distributed

from ... import messages as m
from ... import worker
from ...errors import WorkerDiedError, add_note, capture
from ..thread import BossEnd, _Ends
from . import remote
from .config import setting

_log = logging.getLogger(__name__)

_CHECK = 2.0  # at most this many seconds between looks at the cluster during a long wait


class _SlotEnd(BossEnd):
    """The Boss's end of a slot: messages as objects, bodies pickled (they go to Dask)."""

    encode = staticmethod(worker.dumps)
    decode = staticmethod(pickle.loads)


class Slot:
    """One of the pool's workers, as the Boss sees it: a thread turning batches into tasks."""

    def __init__(self, backend, wid, gen, hooks, has_exit):
        self.backend = backend
        self.client = backend.client
        self.wid, self.gen, self.hooks, self.has_exit = wid, gen, hooks, has_exit
        self.ends = _Ends()
        self.inbox = self.ends.to_worker
        self.boss_end = _SlotEnd(self.ends)
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        for fd in (self.out_r, self.err_r):
            os.set_blocking(fd, False)
        self.futures: dict = {}  # batch id -> dask Future
        self.batches: dict = {}  # batch id -> (Batch, attempt), while in flight
        self.funcs: dict = {}  # function key -> pickled function
        self.killed = False
        self.left = False
        self.stale_seats = None
        self._no_workers_since = None
        self.thread = threading.Thread(target=self._serve, name=f"nbpar-dask-slot-{wid}",
                                       daemon=True)

    def _serve(self):
        try:
            self.ends.post(m.Ready(None))
            while True:
                try:
                    msg = self.inbox.get(timeout=_check_every() if self.futures else None)
                except queue.Empty:
                    self._check_cluster()
                    continue
                if msg is None or not self._handle(msg):
                    break
        except BaseException as exc:  # noqa: BLE001 - never a hang: fail what is in flight
            for batch_id in list(self.futures):
                self._post_failed(batch_id, exc)
        finally:
            try:
                if self.futures:
                    self._stop_batches()
            except Exception:  # noqa: BLE001 - e.g. the client closed meanwhile
                _log.debug("stopping the batches of a slot failed", exc_info=True)
            for fd in (self.out_w, self.err_w):
                os.close(fd)
            self.ends.end()
            stale = self.backend.leave(self) or self.stale_seats
            if stale:
                self.backend.forget_seats(stale, self.gen + 1)
            self.backend.discard(self)

    def _handle(self, msg) -> bool:
        """Carry out one message; False when the slot is done."""
        kind = type(msg)
        if kind is tuple:  # ("done", batch id) from a future's callback
            return self._finished(msg[1])
        if kind is m.Batch:
            self._submit(msg)
        elif kind is m.Func:
            self.funcs[msg.key] = msg.body
        elif kind is m.Forget:
            self.funcs.pop(msg.key, None)
        elif kind is m.Drop:
            self._drop(msg.batch_ids)
        elif kind is m.Retire:
            seats = self.backend.leave(self)  # a set if it is the last of its generation
            if seats and self.has_exit:
                for exited, output in self.backend.run_exits(self.gen, seats):
                    self._write(output)
                    self.ends.post(exited)
            else:
                self.stale_seats = seats  # dropped once the Boss has heard it end
            return False
        return True

    def _submit(self, batch, attempt=0):
        backend = self.backend
        flags, init, exit_hook = self.hooks
        try:
            hooks = (flags, backend.ref(init), backend.ref(exit_hook))
            shared = backend.shared_ref() if flags["use_shared"] else None
            future = self.client.submit(
                remote.run_batch, backend.token, self.gen, self.wid, hooks,
                backend.ref(self.funcs[batch.func_key]), batch, shared, pure=False,
                key=f"nbpar-batch-{backend.token}-{batch.batch_id}-{attempt}")
        except Exception as exc:  # noqa: BLE001 - e.g. the client was closed
            self._post_failed(batch.batch_id, exc)
            return
        self.futures[batch.batch_id] = future
        self.batches[batch.batch_id] = batch, attempt
        inbox = self.inbox
        future.add_done_callback(lambda _, b=batch.batch_id: inbox.put(("done", b)))

    def _finished(self, batch_id) -> bool:
        future = self.futures.pop(batch_id, None)
        batch, attempt = self.batches.pop(batch_id, (None, 0))
        if future is None or self.killed:
            return not self.killed
        try:
            kind, msg, address, output = future.result()
        except distributed.CancelledError as exc:
            if attempt == 0 and batch is not None:
                # Its inputs were lost with their workers (all those holding the shared
                # objects died): it never ran, so it runs once more, its inputs sent again.
                self._submit(batch, attempt + 1)
            else:
                self._post_failed(batch_id, exc)
            return True
        except BaseException as exc:  # noqa: BLE001 - Dask's failure, not the function's
            self._post_failed(batch_id, _explain(exc))
            return True
        self._workers_seen()
        self.backend.where[self.wid] = address
        seats = self.backend.seated.get(self.gen)
        if seats is not None:
            seats.add(address)
        self._write(output)
        if kind == "ran":
            self.ends.post(msg)
        elif kind == "init-failed":
            self.ends.post(msg)
            return False  # as a local worker whose worker_init raised: it is gone
        return True

    def _post_failed(self, batch_id, exc):
        self.ends.post(m.Failed(batch_id, 0.0, worker.dumps([]), capture(exc)))

    def _write(self, output):
        """What a task printed, to the Boss's output pipes; what it logged, as log messages
        (ahead of the batch's result, as from a local worker)."""
        for record in (output or {}).get("log", ()):
            self.ends.post(m.Log(record))
        for stream, text in (output or {}).items():
            if stream == "log":
                continue
            fd = self.out_w if stream == "stdout" else self.err_w
            data = text.encode("utf-8", "replace")
            try:
                while data:
                    data = data[os.write(fd, data):]
            except OSError:
                return  # the Boss released this slot

    def _check_cluster(self):
        """A long wait: are there workers at all? What is seen goes to the Boss: no workers
        (since the first look that found none, said at each look), or workers again."""
        if self.client.nthreads():
            self._workers_seen()
            return
        if self._no_workers_since is None:
            self._no_workers_since = time.monotonic()
        self.ends.post(m.NoWorkers(
            self._no_workers_since, setting("no-workers-timeout"),
            f"the Dask cluster at {self.client.scheduler.address}",
            "dask.config 'nbpar.no-workers-timeout'"))

    def _workers_seen(self):
        """The cluster has workers (a look found some, or a batch ran): a spell without
        them is over, and the Boss is told so."""
        if self._no_workers_since is not None:
            self._no_workers_since = None
            self.ends.post(m.WorkersBack())

    def _drop(self, batch_ids):
        """The state machine failed these batches (their cluster had no workers): they
        never ran; cancel them, and post nothing of theirs."""
        futures = [self.futures.pop(b) for b in batch_ids if b in self.futures]
        for batch_id in batch_ids:
            self.batches.pop(batch_id, None)
        if futures:
            self.client.cancel(futures)

    def _stop_batches(self):
        """A killed slot: cancel what no worker has yet; what a worker has is told to stop at
        its next item, and if it still runs after the grace time, that Dask worker is killed
        (its nanny starts a fresh one).

        This is how a kill is carried out on Dask, not a decision: the state machine has
        decided (KillWorker) that the slot's work ends now, and for the Boss it has ended
        (`DaskBackend.kill` ends the slot's channel at once). What remains is stopping a
        Python thread on another machine, which cannot be killed from outside: ask it, wait
        `nbpar.kill-grace`, then kill its process -- as SIGTERM, a wait, then SIGKILL."""
        futures, self.futures = self.futures, {}
        self.batches.clear()
        batch_of = {f.key: b for b, f in futures.items()}
        try:  # the scheduler alone answers (asking a dying worker could hang for 30 s)
            where = {batch_of[k]: address for address, keys in self.client.processing().items()
                     for k in keys if k in batch_of}
        except Exception:  # noqa: BLE001 - the client is closed: nothing to stop
            _log.debug("asking the scheduler where batches run failed", exc_info=True)
            return
        self.client.cancel([f for b, f in futures.items() if b not in where])
        if not where:
            return
        self.client.run(remote.abort, self.backend.token, list(where),
                        workers=sorted(set(where.values())), on_error="ignore")
        _wait([futures[b] for b in where], setting("kill-grace"))
        stuck = {where[b] for b in where if not futures[b].done()}
        self.client.cancel(list(futures.values()))  # first: Dask must not run them elsewhere
        workers = _workers(self.client) if stuck else {}
        for address in stuck:
            if workers.get(address, {}).get("nanny"):  # without one, it cannot come back
                try:
                    self.client.run(remote.kill_this_worker, workers=[address],
                                    on_error="ignore")
                except Exception:  # noqa: BLE001 - it died before it could answer
                    _log.debug("killing Dask worker %s failed", address, exc_info=True)


def _wait(futures, timeout):
    """Until every future is done, or `timeout` seconds (any client's futures)."""
    left, all_done, lock = [len(futures)], threading.Event(), threading.Lock()

    def one_done(_):
        with lock:
            left[0] -= 1
            if not left[0]:
                all_done.set()
    for future in futures:
        future.add_done_callback(one_done)
    all_done.wait(timeout)


def _workers(client) -> dict:
    """address -> info of every worker (newer Dask lists only some unless asked for all)."""
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:
        return client.scheduler_info()["workers"]


def _check_every() -> float:
    return min(_CHECK, max(0.1, setting("no-workers-timeout") / 2))


def _explain(exc):
    """Dask's own failures as the caller should read them."""
    if isinstance(exc, distributed.KilledWorker):
        limit = dask.config.get("distributed.scheduler.allowed-failures", "?")
        return WorkerDiedError(
            f"the Dask worker that had this batch died (this batch, or another task on that "
            f"worker, killed it), and Dask gave up on the batch after "
            f"distributed.scheduler.allowed-failures = {limit} retries: {exc}")
    if isinstance(exc, (ImportError, AttributeError)) and "nbpar" in str(exc):
        add_note(exc, "nbpar: nbpar must be installed on the Dask workers as well")
    return exc
