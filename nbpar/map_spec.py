"""One map call, whichever face made it: the spec every map of the pool is built from.

`map`, `starmap`, `map_unordered`, `imap`, `imap_unordered` and their `_async` twins differ
only in three choices: whether each item is unpacked (`star`), in which order results come
back (`ordered`), and whether the input is read whole and the results kept as a list, or the
input read lazily and each result handed to the caller as it comes (`lazy`). Everything else
(the keywords, their checks, how the job is built) is one code path in pool.py, so the faces
cannot drift apart; whether the caller blocks or awaits is the face's only other business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .reports import Ledger


@dataclass(frozen=True)
class MapSpec:
    """What to run over what, and how: one map call's arguments, as its face received them.

    `name` is the public method's, so a wrong keyword's error names the call the user made.
    """

    name: str
    func: Any
    iterable: Any = None
    star: bool = False
    ordered: bool = True
    lazy: bool = False
    chunk_size: int | None = None
    progress_bar: bool = False
    iterable_len: int | None = None
    limit: Any = None
    report: Any = None
    checkpoint: Any = None
    memory: Callable[[Any], float] | None = None
    duration: Callable[[Any], float] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def results(self, ledger: Ledger) -> list[Any]:
        """A finished list map's results: in input order, or in the order they finished."""
        return ledger.ordered_results() if self.ordered else ledger.completion_order()
