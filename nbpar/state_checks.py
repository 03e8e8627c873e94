"""The invariants of the Boss's state machine, checked by `BossState.validate_state()`.

The machine keeps several views of one truth so that a task costs no walk over every map and
worker: a batch is in its worker's queue and in its map's `in_flight`; the slots that may take
work are in `_open`, the maps that may give some in `_feeding`, the deadlines in a heap, and
whether every worker is up in `_all_up`. When two views disagree, work is lost, run twice or
never dispatched, and the pool hangs far from the step that broke it. These checks walk
everything, so they are for tests (tests/unit run them after every step) and for debugging,
not for the Boss's loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import BossState

SLOT_STATES = ("starting", "idle", "busy", "retiring", "dead")
ACTIVE = ("pending", "running")


class InvalidState(AssertionError):
    """The state machine broke one of its invariants; the message says which, and where."""


def check(state: BossState) -> None:
    """Raise InvalidState naming the first broken invariant of `state`."""
    problems = list(_problems(state))
    if problems:
        raise InvalidState("; ".join(problems))


def _problems(state: BossState) -> Any:
    yield from _slots(state)
    yield from _jobs(state)
    yield from _views(state)
    if state.halt_scope is not None and not state.halted:
        yield f"halt_scope={state.halt_scope} while not halted"
    if state.shut_down and (len(state.jobs) or any(s.alive for s in state.slots)):
        yield "shut down with maps or workers left"


def _slots(state: BossState) -> Any:
    """Every queued batch is on a live worker, in its map's in_flight, at most two a worker;
    a batch the Boss holds back waits behind the one its worker runs."""
    for slot in state.slots:
        where = f"worker {slot.id} ({slot.state})"
        if slot.state not in SLOT_STATES:
            yield f"{where}: unknown state"
        if bool(slot.queue) != (slot.state == "busy"):
            yield f"{where}: {len(slot.queue)} batches queued"
        if len(slot.queue) > 2:
            yield f"{where}: more than two batches queued"
        if slot.state == "dead" and slot.kill_reason is not None:
            yield f"{where}: dead, yet being killed ({slot.kill_reason})"
        for batch in slot.queue:
            if batch.worker_id != slot.id:
                yield f"{where}: holds batch {batch.batch_id} of worker {batch.worker_id}"
            if batch.job.in_flight.get(batch.batch_id) is not batch:
                yield f"{where}: batch {batch.batch_id} is not in flight for map {batch.job.id}"
    for wid in state.no_workers.spells:
        if not state.slots[wid].alive:
            yield f"worker {wid}: dead, yet its cluster's spell without workers is kept"
    for wid, batch_id in state.withheld.items():  # (a held head would never be sent)
        queue = state.slots[wid].queue
        if not any(b.batch_id == batch_id for b in list(queue)[1:]):
            yield f"worker {wid}: batch {batch_id} held back, but not queued behind another"


def _jobs(state: BossState) -> Any:
    """Every running task is queued on its worker; no item is both pending and running; a
    map's items read add up to those done, failed, running and pending."""
    for job in state.jobs:
        where = f"map {job.id} ({job.status})"
        if not job.active:
            yield f"{where}: among the active maps"
        running: set[Any] = set()
        n_running = 0
        for batch_id, batch in job.in_flight.items():
            slot = state.slots[batch.worker_id]
            if batch.batch_id != batch_id or not any(b is batch for b in slot.queue):
                yield f"{where}: batch {batch_id} in flight but not queued on worker " \
                      f"{batch.worker_id}"
            if not slot.alive:
                yield f"{where}: batch {batch_id} in flight on dead worker {slot.id}"
            if batch.settled:  # timed out: its items are requeued or failed already
                continue
            if running.intersection(batch.indices):
                yield f"{where}: batch {batch_id} runs items another batch runs"
            running.update(batch.indices)
            n_running += len(batch.items)
        pending = [i for indices, _ in job.requeued for i in indices]
        both = running.intersection(pending)
        if both:
            yield f"{where}: items {sorted(both)[:5]} both pending and running"
        if job.stopping is None:
            done = job.ledger.done - job.ledger.prior
            if job.read != done + job.failed + n_running + len(pending):
                yield (f"{where}: {job.read} items read, but {done} done + {job.failed} "
                       f"failed + {n_running} running + {len(pending)} pending")
    for job in state.held:
        if job.active or state.jobs.has(job):
            yield f"map {job.id} ({job.status}) held for the workers' end, yet active"


def _views(state: BossState) -> Any:
    """The shortcuts agree with what they stand for: a slot with room is open, a map with
    work left is feeding, a running batch with a deadline is on the heap."""
    if state._all_up and not all(s.state in ("idle", "busy") for s in state.slots):
        yield "every worker counted up, but one is not"
    for slot in state.slots:
        if state._has_room(slot) and slot.id not in state._open:
            yield f"worker {slot.id} has room but is not open for work"
    for job in state.jobs:
        if job.active and not job.stopping and (job.requeued or not job.exhausted) and \
                state._feeding.get(job.id) is not job:
            yield f"map {job.id} has work left but is not feeding"
    live = {(entry[1], id(entry[3])) for entry in state.deadlines._heap
            if state.deadlines._live(state, entry)}
    for slot in state.slots:
        if slot.queue and slot.kill_reason is None and (
                state._deadline(slot.queue[0]) is not None) and (
                (slot.id, id(slot.queue[0])) not in live):
            yield f"worker {slot.id}: its running batch's deadline is not watched"
