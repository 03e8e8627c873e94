"""Durable results for resumable maps: `pool.map(func, items, checkpoint="run.nbpar")`.

A checkpoint is a SQLite file: one row per finished item (index, pickled result), appended
as results arrive and committed with fsync at a bounded rate, never rewritten; plus a
fingerprint of the function and of the items. Calling the same map again with the same
checkpoint -- after an error, a STOP, a killed process or a kernel restart -- runs only what
is missing. A checkpoint written for other items or another function is refused.

What can go wrong with a file is refused at the start with one `CheckpointError` naming it:
- it holds pickles, and loading a pickle runs code: like ssh with a key file, a file not
  owned by the caller, or writable by its group or others, is not loaded;
- one writer at a time: a map holds an exclusive lock (`<file>-lock`, which names its
  process) while it runs; a second map on the same file is refused, naming the first;
- a damaged, truncated or foreign file is named, with what to do, never a raw DatabaseError;
- a checkpoint that cannot be written (a read-only directory) is read read-only; it serves a
  map only if nothing is missing. A closed checkpoint is one self-contained file (its WAL is
  folded back in), so a finished one can be read wherever it is copied.

The caller's thread writes it (from the results the Boss streams back), so the Boss never
waits on a disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import pickle
import socket
import sqlite3
import stat
import time
import weakref
from urllib.parse import quote

from .errors import CheckpointError, SerializationError, describe

_log = logging.getLogger(__name__)

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
        self.readonly = not _can_write(self.path)
        self._began = False
        self._lock = None
        self.db = None
        try:
            _check_safe(self.path)
            if not self.readonly:
                self._lock = _Lock(self.path)
                _create_private(self.path)
            self.db = self._connect()
            self._check_or_write_fingerprint(func, items)
        except BaseException:
            self.close()
            raise
        self._pending = 0
        self._last_commit = time.monotonic()

    def _connect(self):
        try:
            if not self.readonly:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                _check_ours(db, self.path)  # read before anything is written
                db.executescript(_SCHEMA)
                return db
            if not os.path.exists(self.path):
                raise CheckpointError(
                    f"the checkpoint {self.path!r} does not exist and its directory is not "
                    f"writable: give a path where it can be created")
            uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro"
            if not os.path.exists(self.path + "-wal"):  # nothing outside the file itself
                uri += "&immutable=1"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            _check_ours(db, self.path)
            return db
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from exc

    def _check_or_write_fingerprint(self, func, items):
        expected = {"function": fingerprint_function(func), "items": fingerprint_items(items),
                    "total": str(len(items))}
        try:
            found = dict(self.db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from exc
        if not found and not self.readonly:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", expected.items())
            return
        if "function" not in found:
            raise _damaged(self.path, "it has no fingerprint")
        for key, what in (("function", "another function"), ("items", "other items")):
            if found.get(key) != expected[key]:
                raise CheckpointError(
                    f"the checkpoint {self.path!r} was written for {what}; it is never mixed "
                    f"with this map: use another file, or delete it to start over")

    def begin(self, missing: int):
        """Ready to record, once the file was read whole (a damaged one is never written
        to). A read-only checkpoint serves only a map it holds every result of."""
        if self.readonly:
            if missing:
                raise CheckpointError(
                    f"the checkpoint {self.path!r} cannot be written here (read-only) and "
                    f"{missing} item(s) are missing from it: copy it to a writable directory "
                    f"to finish the map")
            return
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("BEGIN")
        self._began = True

    def done(self) -> dict:
        """index -> result of everything recorded so far."""
        try:
            rows = self.db.execute("SELECT idx, value FROM results").fetchall()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from exc
        out = {}
        for idx, value in rows:
            try:
                out[idx] = pickle.loads(value)
            except Exception as exc:  # a damaged row, or a class now missing
                raise CheckpointError(
                    f"the result for index {idx} in the checkpoint {self.path!r} cannot be "
                    f"loaded ({type(exc).__name__}: {exc}): if its code moved, restore it; "
                    f"otherwise move the file away (or delete it) to start over") from exc
        return out

    def record(self, indices, results, items_by_index):
        import cloudpickle
        rows = []
        for index, value in zip(indices, results):
            try:
                rows.append((index, cloudpickle.dumps(value, protocol=5)))
            except Exception as exc:
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
        """Commit, fold the WAL back into the file (a closed checkpoint is one file, readable
        read-only anywhere), and let the next map have it."""
        try:
            if self.db is not None:
                try:
                    if self.db.in_transaction:
                        self.db.execute("COMMIT")
                    if self._began:
                        self.db.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.DatabaseError:
                    # a damaged file was named already; a busy one keeps its WAL
                    _log.debug("closing checkpoint %s cleanly failed", self.path,
                               exc_info=True)
                finally:
                    self.db.close()
                    self.db = None
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def _can_write(path) -> bool:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.access(directory, os.W_OK):
        return False
    return not os.path.exists(path) or os.access(path, os.W_OK)


def _check_safe(path):
    """Loading a checkpoint unpickles it, which runs code: refuse one that someone else
    could have written (as ssh refuses such a key file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_uid != os.geteuid():
        raise CheckpointError(
            f"the checkpoint {path!r} is owned by uid {st.st_uid}, not by you (uid "
            f"{os.geteuid()}): loading it would run code it holds (pickles); copy it if you "
            f"trust it, or use another file")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CheckpointError(
            f"the checkpoint {path!r} is writable by other users (mode "
            f"{stat.filemode(st.st_mode)}): loading it would run code it holds (pickles); if "
            f"you trust it, run: chmod go-w {path}")


def _create_private(path):
    """A new checkpoint is readable and writable by its owner only."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass  # not new: its permissions were checked, it is used as it is


def _check_ours(db, path):
    """A SQLite file of another program is never written into."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables - {"meta", "results"}:
        raise _damaged(path, f"it is a SQLite file of another program (tables: "
                             f"{', '.join(sorted(tables))})")


def _damaged(path, cause) -> CheckpointError:
    why = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else cause
    return CheckpointError(
        f"the checkpoint {path!r} cannot be used: {why}. It is damaged, truncated or not an "
        f"nbpar checkpoint; move it away (or delete it) to start the map over")


class _Lock:
    """One writer per checkpoint: an flock on `<path>-lock`, which names its holder. Released
    by the kernel if the holder dies, so a killed process never leaves it locked."""

    def __init__(self, path):
        self.path = path + "-lock"
        while True:
            try:  # never through a symlink: a planted one must not make us truncate a file
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise CheckpointError(
                    f"the checkpoint {path!r} cannot be locked: {self.path!r}: {exc}; if no "
                    f"map is running on it, remove that file") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                if holder == _me():
                    holder += ": this very process"
                raise CheckpointError(
                    f"the checkpoint {path!r} is in use by another map ({holder}): two maps "
                    f"never write one checkpoint; wait for that one to finish, or use another "
                    f"file") from None
            try:  # the holder before us may have removed the file between our open and lock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        # a map dropped before it ran (a bad keyword after the checkpoint was opened) must
        # not keep the file locked for the rest of the session: the fd goes with this object
        self._finalizer = weakref.finalize(self, os.close, fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{_me()}\n".encode())

    def release(self):
        try:
            os.unlink(self.path)  # while still held: whoever opened it retries
        except OSError:
            _log.debug("removing the lock file %s failed", self.path, exc_info=True)
        self._finalizer()


def _me() -> str:
    return f"process {os.getpid()} on {socket.gethostname()}"
