"""run_job: a shell command run as a grid-engine job (DRMAA) or as a local process, waited
for without polling; its output returned, its failure raised as `nbpar.JobError`.

    run_job(cmd)
      │ a fresh directory: job.sh (the command, verbatim), job.out, job.err
      ├─ run_locally ──► LocalJob: /bin/sh job.sh in its own process group   (cluster_jobs.py)
      └─ otherwise ────► GridJob: the same script through the process's DRMAA session
      ▼
    Outcome (exit status, signal, aborted, timed out) ──► (stdout, stderr) or JobError

Both kinds of job go through the same path, so `run_locally=True` behaves as the grid does.
The command travels as a script, never as arguments (`qsub -b y` loses shell quoting), and a
fresh directory per job sidesteps SGE appending to existing output files.

Steering: each running job is registered with the pool whose worker thread started it
(`WorkerPool.current()`). The first job of a pool subscribes `_Steering` to that pool's signals
(`WorkerPool.subscribe`) and reads from its report whether it is halted already: when the pool
is HALTed, its jobs are paused (queued ones held, running ones suspended) and jobs its
threads ask for while it is halted start held; RESUME and STOP unpause them (STOP lets running
tasks finish, so their jobs must run); STOP_RIGHTNOW stops them, just after the Boss has the
signal, so that the interrupted tasks count as stopped rather than failed. This reaches jobs
started from `start_method="threading"` workers: process workers have their own DRMAA sessions,
out of the caller's reach. At exit, jobs still running for abandoned tasks are stopped.
"""

from __future__ import annotations

import atexit
import os
import re
import tempfile
import threading
import time
import weakref

from .cluster_jobs import (DrmaaUnavailable, GridJob, LocalJob, Outcome, close_session,
                           shared_session)
from .errors import JobError, describe
from .pool import WorkerPool
from .signals import Signal

__all__ = ["DrmaaUnavailable", "run_job", "shared_session"]

_STOP_GRACE = 30  # seconds to wait for a terminated job to be reported gone
_TAIL = 2000  # characters of stderr quoted in a JobError's message


def run_job(cmd, *, job_name=None, queue=None, native_options=None, run_locally=False,
            touch_only=None, session=None, logger=None, timeout=None):
    """Run the shell command `cmd` as a grid-engine job (through DRMAA) and wait for it.

    Call it from the tasks of a threading pool, so one DRMAA session serves them all; the
    pool's signals reach the jobs (HALT holds and suspends them, RESUME and STOP release
    them, STOP_RIGHTNOW terminates them).

    Parameters
    ----------
    cmd : str
        The command, run under /bin/sh in the caller's current directory (its quoting
        intact: it travels as a script, not as qsub arguments).
    job_name : str, optional
        The job's name on the grid. Default: made from the command.
    queue : str, optional
        The queue, in the DRMAA native specification.
    native_options : str or list of str, optional
        qsub options such as "-l h_vmem=2G", in the native specification.
    run_locally : bool, default False
        Run the command on this machine instead, through the same path (same results, same
        errors): for developing without a cluster.
    touch_only : str or list of str, optional
        Run nothing; only touch these files (creating them if missing).
    session : drmaa.Session, optional
        A session to use instead of the shared one.
    logger : logging.Logger, optional
        Gets a line as the job is submitted and as it ends.
    timeout : float, optional
        Seconds after which the job is terminated and `JobError` raised with
        ``timed_out=True``. Default None: no limit.

    Returns
    -------
    tuple of str
        The job's ``(stdout, stderr)``.

    Raises
    ------
    nbpar.JobError
        The job exited non-zero, was killed by a signal, was aborted or timed out.
    ValueError
        An empty command, or a bad timeout.
    """
    if touch_only is not None:
        paths = _touch(touch_only)
        if logger is not None:
            logger.debug("run_job: touched %s instead of running %s", paths, describe(cmd))
        return "", ""
    if not isinstance(cmd, str) or not cmd.strip():
        raise ValueError(f"run_job needs a shell command as a non-empty string, got "
                         f"{describe(cmd)}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a number of seconds > 0 (or None), got {timeout!r}")
    spec = _native_spec(queue, native_options)
    with tempfile.TemporaryDirectory(prefix="nbpar-job-",
                                     dir=os.environ.get("NBPAR_JOB_DIR")) as workdir:
        files = _Files(workdir, cmd)
        if run_locally:
            job = LocalJob(files)
        else:
            job = GridJob(files, _job_name(job_name, cmd), spec, session)
        outcome = _execute(job, timeout, logger)
        stdout, stderr = files.read()
    if outcome.ok:
        return stdout, stderr
    raise JobError(_explain(cmd, job.job_id, outcome, stderr, timeout), cmd=cmd,
                   job_id=job.job_id, exit_status=outcome.exit_status, signal=outcome.signal,
                   aborted=outcome.aborted, timed_out=outcome.timed_out, stdout=stdout,
                   stderr=stderr)


# ----------------------------------------------------------------------------- the common path

class _Files:
    """The job's directory: its script and the files its output goes to."""

    def __init__(self, workdir, cmd):
        self.dir = workdir
        self.cmd = cmd
        self.script = os.path.join(workdir, "job.sh")
        self.out = os.path.join(workdir, "job.out")
        self.err = os.path.join(workdir, "job.err")
        with open(self.script, "w") as f:
            f.write(cmd if cmd.endswith("\n") else cmd + "\n")

    def read(self):
        return _read(self.out), _read(self.err)


def _read(path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:  # the job never ran
        return ""


def _execute(job, timeout, logger) -> Outcome:
    """Start, wait (up to `timeout`), and never leave the job running behind us."""
    deadline = None if timeout is None else time.monotonic() + timeout
    _steering.register(job)
    try:
        job.start()
        if logger is not None:
            logger.info("run_job: job %s submitted: %s", job.job_id, describe(job.files.cmd))
        outcome = job.wait(deadline)
        if outcome is None:  # timed out
            job.stop()
            outcome = job.wait(time.monotonic() + _STOP_GRACE) or Outcome(aborted=True)
            outcome.timed_out = True
        if logger is not None:
            logger.info("run_job: job %s ended: %s", job.job_id,
                        _what(outcome, timeout))
        return outcome
    finally:
        if not job.finished:  # an exception (KeyboardInterrupt...) while waiting
            job.stop()
            job.reap()
        _steering.unregister(job)


def _explain(cmd, job_id, outcome, stderr, timeout) -> str:
    text = f"job {job_id} ({describe(cmd)}) {_what(outcome, timeout)}"
    tail = stderr.strip()
    if tail:
        text += "\n--- its stderr" + (" (end)" if len(tail) > _TAIL else "") + " ---\n"
        text += tail[-_TAIL:]
    return text


def _what(outcome, timeout) -> str:
    if outcome.ok:
        return "exited with status 0"
    if outcome.timed_out:
        return f"did not finish within {timeout} s and was terminated"
    if outcome.signal is not None:
        return f"was killed by {outcome.signal}"
    if outcome.aborted:
        return "was aborted before it finished"
    if outcome.exit_status is None:
        return "ended without an exit status"
    return f"exited with status {outcome.exit_status}"


def _touch(paths) -> list:
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    done = []
    for path in paths:
        with open(path, "ab"):
            pass
        os.utime(path, None)
        done.append(os.fspath(path))
    return done


def _job_name(name, cmd) -> str:
    """A name SGE accepts (no '/', ':', '@', '\\', '*', '?', no leading digit)."""
    if name is None:
        name = os.path.basename(cmd.split()[0])
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))[:64] or "nbpar"
    return "j" + name if name[0].isdigit() else name


def _native_spec(queue, native_options) -> str:
    parts = []
    if queue is not None:
        parts.append(f"-q {queue}")
    if native_options:
        parts.append(native_options if isinstance(native_options, str)
                     else " ".join(str(o) for o in native_options))
    return " ".join(parts)


# ----------------------------------------------------------------------------- steering

class _Steering:
    """Makes the live jobs follow the signals of the pools whose threads started them.

    A job is paused under the lock as it registers, so a RESUME can never slip in between a
    registration that saw its pool halted and the pause that follows. A pool is followed
    from its first job on: subscribed to, then asked whether it is halted (the subscription
    has every earlier signal at the Boss, so the report reflects them; a signal heard since
    is newer than what the report says)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.follow_lock = threading.Lock()  # one pool's first jobs subscribe once
        self.jobs: dict = {}  # job -> the pool whose worker thread started it (weakly), or None
        self.followed = weakref.WeakSet()  # pools subscribed to
        self.heard = weakref.WeakSet()  # pools whose signals were heard since
        self.halted = weakref.WeakSet()  # pools between HALT and RESUME / STOP
        self.exit_hook = False

    def register(self, job):
        pool = WorkerPool.current()  # (run_job registers in the thread that runs the job)
        if pool is not None:
            self._follow(pool)
        with self.lock:
            if not self.exit_hook:
                self.exit_hook = True
                atexit.register(_at_exit)
            self.jobs[job] = None if pool is None else weakref.ref(pool)
            if pool is not None and pool in self.halted:
                job.pause()  # not started yet: it will start held

    def _follow(self, pool):
        with self.follow_lock:
            if pool in self.followed:
                return
            pool.subscribe(self.on_signal, reports=False)
            halted = pool.report().pool_halted
            with self.lock:
                self.followed.add(pool)
                if halted and pool not in self.heard:
                    self.halted.add(pool)

    def unregister(self, job):
        with self.lock:
            self.jobs.pop(job, None)

    def live(self) -> list:
        with self.lock:
            return list(self.jobs)

    def on_signal(self, told):
        """A pool's signal (a subscriber: see WorkerPool.subscribe)."""
        pool, signal = told.pool, told.signal
        if signal not in (Signal.HALT, Signal.RESUME, Signal.STOP, Signal.STOP_RIGHTNOW):
            return None
        with self.lock:
            self.heard.add(pool)
            if signal is Signal.HALT:
                self.halted.add(pool)
            else:
                self.halted.discard(pool)
            jobs = [job for job, ref in self.jobs.items()
                    if ref is not None and ref() is pool]
        if signal is Signal.STOP_RIGHTNOW:  # run just after the Boss has the signal: the
            return lambda: [job.stop() for job in jobs]  # tasks count as stopped, not failed
        for job in jobs:
            if signal is Signal.HALT:
                job.pause()
            else:
                job.unpause()
        return None


def _at_exit():
    """Stop the jobs still running for abandoned tasks; end the DRMAA session."""
    for job in _steering.live():
        job.stop()
    close_session()


_steering = _Steering()
