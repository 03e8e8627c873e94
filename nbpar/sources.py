"""The input of a map, read a batch at a time.

A list is sliced: a batch costs one slice, however many items it holds. An iterator is read
lazily, only as far as the Boss needs, so a generator of ten million items never sits in
memory. Both hand out (indices, items), indices as a range wherever they are contiguous.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any


class ListSource:
    """A materialized input (a map's list, or a stopped map's pending items)."""

    error = None

    def __init__(self, items: list[Any], indices: Sequence[int] | None = None) -> None:
        self.items = items
        self.indices = indices  # None: the positions themselves
        self.length = len(items)
        self.pos = 0

    def peek(self) -> Any:
        """The next item (the source must not be exhausted)."""
        return self.items[self.pos]

    def reordered(self, order: Sequence[int]) -> ListSource:
        """The same items in another order (before any was taken), indices kept."""
        indices = range(self.length) if self.indices is None else self.indices
        return ListSource([self.items[p] for p in order], [indices[p] for p in order])

    def take(self, n: int) -> tuple[Sequence[int], list[Any]]:
        start, stop = self.pos, min(self.pos + n, self.length)
        self.pos = stop
        indices = range(start, stop) if self.indices is None else self.indices[start:stop]
        return indices, self.items[start:stop]


class IterSource:
    """A lazy input: items are read from the iterator only when a batch needs them."""

    length = None
    peek = None  # a lazy input is not read ahead for schedulers

    def __init__(self, iterable: Iterable[Any]) -> None:
        self.iterator = iter(iterable)
        self.read = 0
        self.error: BaseException | None = None  # what the iterator raised, if it did

    def take(self, n: int) -> tuple[Sequence[int], list[Any]]:
        """Up to n items; if the iterator raises, what was read before it is still returned
        and the exception is kept in `error` (nothing read is ever dropped)."""
        items: list[Any] = []
        try:
            items.extend(islice(self.iterator, n))  # extend keeps what came before a raise
        except Exception as exc:  # noqa: BLE001 - the user's iterable: reported by the Boss
            self.error = exc
        start = self.read
        self.read += len(items)
        return range(start, self.read), items
