"""Process titles, so that `ps`, `top` and `htop` tell nbpar's processes apart.

Every worker process would otherwise show the caller's command line (a Jupyter kernel's, or
`python -c "from multiprocessing.spawn ..."`), and the fork server `python -m
nbpar.backends.forkserver 5`. Each kind of process calls `set_title` once as it starts: the
fork server ("nbpar fork server") and each worker ("nbpar worker 1 (pool 3)").

With setproctitle installed (`pip install 'nbpar[titles]'`) the whole title replaces the
command line (`ps -f`, `Process.cmdline()`); the kernel's short name (`ps -e`, `top`,
`Process.name()`, 15 bytes at most) is set in either case, from `short`, by writing
`/proc/self/comm`. A title is a convenience: nothing here ever raises. Under fork, a worker of
a process that rewrote its first environment variable (or cleared `os.environ`) keeps the
command line: setproctitle finds the command line from there; the short name is still set.
"""

from __future__ import annotations

import logging

_log = logging.getLogger(__name__)

COMM_BYTES = 15  # what Linux keeps of a process's short name (TASK_COMM_LEN - 1)


def set_title(title: str, short: str) -> None:
    """Show this process as `title` (its command line) and `short` (its name).

    Parameters
    ----------
    title : str
        The full title, e.g. "nbpar worker 1 (pool 3)"; it replaces the command line only
        when setproctitle is installed.
    short : str
        The name `top` and `ps -e` show, e.g. "nbpar-w1-p3": cut to 15 bytes by the kernel,
        so it should fit.
    """
    try:
        from setproctitle import setproctitle
    except ImportError:
        pass  # not installed (optional): the command line stays as it is
    else:
        try:
            setproctitle(title)
        except Exception:  # noqa: BLE001 - a title never stops a process from starting
            _log.debug("setting the process title failed", exc_info=True)
    try:
        with open("/proc/self/comm", "wb") as comm:
            comm.write(short.encode("utf-8", "replace")[:COMM_BYTES])
    except OSError:  # not Linux, or /proc not mounted: the name stays as it was
        _log.debug("setting the process name failed", exc_info=True)


def worker_titles(worker_id, pool_number) -> tuple[str, str]:
    """(title, short name) of a worker process: "nbpar worker 1 (pool 3)", "nbpar-w1-p3"."""
    if pool_number is None:
        return f"nbpar worker {worker_id}", f"nbpar-w{worker_id}"
    return (f"nbpar worker {worker_id} (pool {pool_number})",
            f"nbpar-w{worker_id}-p{pool_number}")


SERVER_TITLES = ("nbpar fork server", "nbpar-forksrv")
