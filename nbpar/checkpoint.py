"""Durable results for resumable maps: `pool.map(func, items, checkpoint="run.nbpar")`.

A checkpoint is a SQLite file: one row per finished item (index, pickled result), appended
as results arrive and committed with fsync at a bounded rate, never rewritten; plus a
fingerprint of the function and of the items. Calling the same map again with the same
checkpoint -- after an error, a STOP, a killed process or a kernel restart -- runs only what
is missing. A checkpoint written for other items or another function is refused.

The caller's thread writes it (from the results the Boss streams back), so the Boss never
waits on a disk.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import time

from .errors import SerializationError, describe

COMMIT_EVERY = 0.5  # seconds between two commits (each an fsync) while results arrive
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (idx INTEGER PRIMARY KEY, value BLOB NOT NULL);
"""


def fingerprint_function(func) -> str:
    """Name and code of the function (a lambda redefined the same way matches)."""
    inner = getattr(func, "func", func)  # functools.partial
    code = getattr(inner, "__code__", None)
    h = hashlib.sha256()
    h.update(f"{getattr(inner, '__module__', '')}.{getattr(inner, '__qualname__', '')}".encode())
    if code is not None:
        h.update(code.co_code)
        h.update(repr(code.co_consts).encode())
    return h.hexdigest()


def fingerprint_items(items) -> str:
    import cloudpickle
    h = hashlib.sha256()
    for item in items:
        h.update(cloudpickle.dumps(item, protocol=5))
    h.update(str(len(items)).encode())
    return h.hexdigest()


class Checkpoint:
    """One map's durable record of finished results."""

    def __init__(self, path, func, items):
        self.path = os.fspath(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._check_or_write_fingerprint(func, items)
        self._pending = 0
        self._last_commit = time.monotonic()
        self.db.execute("BEGIN")

    def _check_or_write_fingerprint(self, func, items):
        expected = {"function": fingerprint_function(func), "items": fingerprint_items(items),
                    "total": str(len(items))}
        found = dict(self.db.execute("SELECT key, value FROM meta"))
        if not found:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", expected.items())
            return
        for key, what in (("function", "another function"), ("items", "other items")):
            if found.get(key) != expected[key]:
                self.db.close()
                raise ValueError(
                    f"the checkpoint {self.path!r} was written for {what}; it is never mixed "
                    f"with this map: use another file, or delete it to start over")

    def done(self) -> dict:
        """index -> result of everything recorded so far."""
        rows = self.db.execute("SELECT idx, value FROM results").fetchall()
        return {idx: pickle.loads(value) for idx, value in rows}

    def record(self, indices, results, items_by_index):
        import cloudpickle
        rows = []
        for index, value in zip(indices, results):
            try:
                rows.append((index, cloudpickle.dumps(value, protocol=5)))
            except Exception as exc:  # noqa: BLE001
                raise SerializationError(
                    f"the result for item {describe(items_by_index[index])} (index {index}) "
                    f"is a {type(value).__name__} that cannot be stored in the checkpoint: "
                    f"{type(exc).__name__}: {exc}") from exc
        self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)
        self._pending += len(rows)
        if time.monotonic() - self._last_commit >= COMMIT_EVERY:
            self.commit()

    def commit(self):
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self._pending = 0
        self._last_commit = time.monotonic()
        self.db.execute("BEGIN")

    def close(self):
        try:
            if self.db.in_transaction:
                self.db.execute("COMMIT")
        finally:
            self.db.close()
