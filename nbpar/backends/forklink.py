"""What a pool and nbpar's fork server say to each other (forkserver.py), one dataclass each.

A pool opens its link with `OpenLink` on the server's main connection (the link's socket goes
along as an fd). On the link, the pool sends `SetPath`, `Preload`, `Share` (its shared objects'
fds follow) and `Spawn` (the worker's pipe, stdout and stderr follow); the server answers a
`Spawn` with `Spawned` (the worker's sentinel follows), `Unshared` or `ServerFailed`, and tells
of each of its workers' ends with `Exited`. Each side acts on a message by its type.

The messages live here, not in forkserver.py, because the server runs that module as
`__main__`: classes defined there would not be the ones the caller pickles.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OpenLink", "SetPath", "Preload", "Share", "Spawn", "Spawned", "Exited",
           "Unshared", "ServerFailed"]


# ----------------------------------------------------------------------------- to the server

@dataclass(frozen=True, slots=True)
class OpenLink:
    """A new pool's link (its socket follows as an fd)."""


@dataclass(frozen=True, slots=True)
class SetPath:
    """The caller's sys.path and working directory, used by what the server unpickles and
    imports for this link."""

    sys_path: list[str]
    cwd: str


@dataclass(frozen=True, slots=True)
class Preload:
    """Modules to import before the next fork (those a pool's functions name)."""

    modules: list[str]


@dataclass(frozen=True, slots=True)
class Share:
    """The pool's shared objects and hooks, packed (None: none); `nfds` fds follow."""

    data: bytes | None
    nfds: int
    refs: object = None  # Packed.refs: what the packed data refers to by reference


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a worker with this pickled WorkerSetup; its pipe, stdout and stderr follow."""

    setup: bytes


# ----------------------------------------------------------------------------- from the server

@dataclass(frozen=True, slots=True)
class Spawned:
    """The worker is forked (its sentinel follows as an fd)."""

    pid: int


@dataclass(frozen=True, slots=True)
class Exited:
    """A worker of this link has ended."""

    pid: int
    exitcode: int | None


@dataclass(frozen=True, slots=True)
class Unshared:
    """The link's shared objects could not be unpickled in the server: no worker forks."""

    why: str


@dataclass(frozen=True, slots=True)
class ServerFailed:
    """Handling a message failed in the server (it goes on serving)."""

    why: str
