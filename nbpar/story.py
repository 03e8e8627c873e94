"""The Boss's story: the last steps of its state machine, each an event and what it answered.

After a hang or a wrong answer, the question is what the Boss heard and what it did about it.
The state machine numbers every event it takes (its `stimulus_id`) and keeps, for each of its
last `STORY_LENGTH` steps, a `Step`: that number, the time, the event and the instructions it
gave, each as its kind and the few small values that identify it (`Event.ids`,
`Instruction.ids`: worker, batch and map ids). Nothing larger is kept, so the story holds no
results, items or maps alive. `entries` turns steps into readable `StoryEntry`s, which is what
`WorkerPool.debug_log()` returns; dask/distributed's stimulus ids and `story()` are the model.
Report requests are numbered but not kept (`Event.told`): they change nothing, and a widget
asking ten a second would soon leave nothing else in the story.

A step costs one tuple and one deque append: the story is always kept, since the step that
matters has happened by the time anyone thinks of looking.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any, NamedTuple

STORY_LENGTH = 1000  # steps kept

# (stimulus_id, time, the event's brief, the instructions' briefs); a brief is what
# `Event._brief` returns: the class alone, or a tuple of the class and its ids
Step = tuple[int, float, Any, tuple[Any, ...]]


class StoryEntry(NamedTuple):
    """One step of the Boss's state machine, as `WorkerPool.debug_log()` gives it.

    Attributes
    ----------
    stimulus_id : int
        The event's number, in the order the Boss took its events.
    time : float
        When it was handled, in `time.monotonic()` seconds.
    event : str
        The event and its ids, e.g. ``"BatchDone(worker_id=1, batch_id=7)"``.
    instructions : tuple of str
        What the state machine answered, the same way, e.g. ``("Dispatch(worker_id=1,
        batch_id=9, job_id=2)",)``.
    """

    stimulus_id: int
    time: float
    event: str
    instructions: tuple[str, ...]

    def __str__(self) -> str:
        told = ", ".join(self.instructions) or "nothing"
        return f"#{self.stimulus_id} at {self.time:.6f}: {self.event} -> {told}"


def entries(steps: Iterable[Step]) -> list[StoryEntry]:
    """Readable entries for raw steps, oldest first."""
    return [StoryEntry(sid, when, text_of(event), tuple(text_of(i) for i in told))
            for sid, when, event, told in steps]


def text_of_step(step: Step) -> str:
    """One line for a raw step (what the Boss logs at DEBUG)."""
    return str(entries((step,))[0])


def text_of(brief: Any) -> str:
    """``Kind(name=value, ...)`` for a brief (see `Event._brief`)."""
    if isinstance(brief, type):
        return f"{brief.__name__}()"
    cls, *values = brief
    names = [_short(path) for path in cls.ids]
    inner = ", ".join(f"{name}={_shown(value)}" for name, value in zip(names, values))
    return f"{cls.__name__}({inner})"


def _shown(value: Any) -> str:
    """Signal.HALT rather than <Signal.HALT: 'HALT'>; repr for the rest."""
    return str(value) if isinstance(value, Enum) else repr(value)


def _short(path: str) -> str:
    """The name to show for an attribute path: "batch.batch_id" -> "batch_id",
    "batch.job.id" -> "job_id"."""
    parts = path.split(".")
    if len(parts) > 1 and parts[-1] == "id":
        return f"{parts[-2]}_id"
    return parts[-1]
