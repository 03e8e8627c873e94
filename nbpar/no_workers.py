"""What a pool does when the cluster its workers hand batches to has no workers at all: a
policy of the Boss's state machine (pure: no clock, no I/O; state.py asks it).

A worker slot that runs its batches on a cluster (the Dask backend's) cannot tell an empty
cluster from a busy one by its batches alone: they just wait. So it looks, and says what it
sees -- `ClusterEmpty` (no workers since a time, said again at each look while it has
batches waiting and sees none), `ClusterBack` (workers again) -- and decides nothing. The
state machine keeps each slot's spell without workers here and, at each look, asks whether
the spell has lasted the wait allowed (`timeout`, the cluster's own setting, sent with the
look). Once it has, every batch waiting on that slot fails with a `WorkerDiedError` saying
so, as a failed task does (the map's failure policy then retries, collects or stops it), and
the slot is told to drop them. A batch given to the slot later in the same spell fails at
its next look: the cluster is no emptier for being asked again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import WorkerDiedError


@dataclass(slots=True)
class Spell:
    """A slot's cluster without workers: since when (the Boss's clock, time.monotonic), the
    wait allowed, and how to name the cluster and the setting of that wait in an error."""

    since: float
    timeout: float
    cluster: str  # e.g. "the Dask cluster at tcp://10.0.0.1:8786"
    setting: str  # e.g. "dask.config 'nbpar.no-workers-timeout'"

    def over(self, now: float) -> bool:
        """Whether the batches waiting on the cluster fail (at `now`)."""
        return now - self.since >= self.timeout

    def error(self, worker_id: int) -> WorkerDiedError:
        """The error of one batch (a new one each: each gets its own item's note)."""
        return WorkerDiedError(
            f"{self.cluster} has had no workers for {self.timeout:g} s, so its batches cannot "
            f"run: start or scale its workers (the wait is {self.setting})",
            worker_id=worker_id)


class NoWorkersPolicy:
    """The spells without workers of a pool's slots, by worker id, and what they fail."""

    __slots__ = ("spells",)

    def __init__(self) -> None:
        self.spells: dict[int, Spell] = {}

    def empty(self, worker_id: int, spell: Spell, now: float) -> bool:
        """A slot saw no workers (`spell`: since when, the wait allowed). True: its waiting
        batches fail now."""
        known = self.spells.get(worker_id)
        if known is not None and known.since < spell.since:
            spell.since = known.since  # (one spell: from its first look on)
        self.spells[worker_id] = spell
        return spell.over(now)

    def back(self, worker_id: int) -> None:
        """The slot's cluster has workers again, or the slot is gone: its spell ends."""
        self.spells.pop(worker_id, None)
