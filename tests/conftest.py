"""Every test must leave no child process and no shared-memory segment behind.

Allowed to outlive a test: the long-lived helpers that are direct children of the test process,
multiprocessing's resource tracker and nbpar's fork server (but not the workers it forks: they
carry its title until they set their own, so helpers are told apart by being our direct
children).
"""

from __future__ import annotations

import gc
import os

import psutil
import pytest

SHM_DIR = "/dev/shm"
SHM_PREFIXES = (f"nbpar-{os.getpid()}-",)  # nbpar names its segments after the creating process
HELPERS = ("resource_tracker", "nbpar.backends.forkserver", "nbpar fork server")
GRACE = 3.0  # seconds a leftover process gets to go away on its own


def _shm_segments() -> set[str]:
    try:
        return {name for name in os.listdir(SHM_DIR) if name.startswith(SHM_PREFIXES)}
    except FileNotFoundError:
        return set()


def _children() -> set[psutil.Process]:
    return set(psutil.Process().children(recursive=True))


def _is_helper(proc: psutil.Process) -> bool:
    try:
        if proc.ppid() != os.getpid():
            return False
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    return any(helper in cmdline for helper in HELPERS)


def _alive(procs) -> list[psutil.Process]:
    """Those still running; a zombie has exited (its owner has not reaped it yet)."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} (parent {proc.ppid()}): {' '.join(proc.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {proc.pid}"


@pytest.fixture(autouse=True)
def no_leftovers():
    """Fail a test that leaves a child process or a /dev/shm segment behind."""
    procs_before = _children()
    shm_before = _shm_segments()
    yield

    new = [p for p in _children() - procs_before if not _is_helper(p)]
    leftover = _alive(new)
    if leftover:
        _, leftover = psutil.wait_procs(leftover, timeout=GRACE)
        leftover = _alive(leftover)

    new_shm = _shm_segments() - shm_before
    if new_shm:
        gc.collect()  # a pool dropped in a reference cycle unlinks its segments when collected
        new_shm = _shm_segments() - shm_before

    problems = []
    if leftover:
        problems.append(f"{len(leftover)} child process(es) still running {GRACE:g} s after "
                        f"the test:\n  " + "\n  ".join(_describe(p) for p in leftover))
        for proc in leftover:  # keep later tests clean
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftover, timeout=GRACE)
    if new_shm:
        problems.append("shared-memory segment(s) left in /dev/shm: "
                        + ", ".join(sorted(new_shm)))
        for name in new_shm:
            try:
                os.unlink(os.path.join(SHM_DIR, name))
            except OSError:
                pass
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _stop_fork_server():
    """nbpar's fork server lives across pools; stop it when the session ends."""
    yield
    from nbpar.backends.forkserver import shutdown_server
    shutdown_server()
