"""The two kinds of job `nbpar.run_job` runs, and the process's DRMAA session.

`LocalJob` runs `/bin/sh job.sh` here, in its own process group, and waits on a pidfd;
`GridJob` submits the same script through DRMAA, its output and errors directed (-o / -e) into
the job's directory, and waits in DRMAA's own wait. Both offer what run_job and the steering of
jobs by pool signals need -- start, wait(deadline) -> Outcome (None when the deadline passed),
and pause / unpause / stop from any thread, before, while and after the job runs: a job paused
before it starts, starts held (a grid job is submitted on hold; a local one waits to be
spawned). Paused is hold + suspend on the grid (hold first, so a queued job cannot start
between the two), SIGSTOP locally; stop is terminate, or SIGKILL to the process group.

DRMAA: `import drmaa` happens on the first grid job only. libdrmaa links jemalloc, which a
running process cannot load late ("cannot allocate memory in static TLS block"): the process
must start with LD_PRELOAD naming libjemalloc (the engine's setup exports its path as
NBPAR_DRMAA_PRELOAD), with DRMAA_LIBRARY_PATH and SGE_ROOT set. DRMAA allows one session per
process: every thread shares it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import select
import signal as _signal
import subprocess
import threading
import time
from dataclasses import dataclass

from .errors import NbparError

_log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a job ended: its exit status (None unless it exited by itself), the signal that
    killed it, whether it was aborted (terminated by the engine or by a stop), and whether
    run_job's timeout ran out."""

    exit_status: int | None = None
    signal: str | None = None
    aborted: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return (self.exit_status == 0 and self.signal is None and not self.aborted
                and not self.timed_out)


class ClusterJob:
    """A job as steering sees it: pause / unpause / stop are safe from any thread, before,
    while and after it runs (a job paused before it starts, starts held)."""

    def __init__(self, files):
        self.files = files
        self.thread = threading.current_thread()
        self.job_id = None
        self.paused = self.stopped = self.started = self.finished = False
        self.cond = threading.Condition()

    def pause(self):
        with self.cond:
            if not (self.paused or self.finished):
                self.paused = True
                if self.started:
                    self._pause()

    def unpause(self):
        with self.cond:
            if self.paused and not self.finished:
                self.paused = False
                if self.started:
                    self._unpause()
                self.cond.notify_all()

    def stop(self):
        with self.cond:
            if not (self.stopped or self.finished):
                self.stopped = True
                if self.started:
                    self._stop()
                self.cond.notify_all()

    def start(self):
        """Submit or spawn it -- held if paused; not at all if already stopped."""
        raise NotImplementedError

    def wait(self, deadline) -> Outcome | None:
        """Block until it ends (its Outcome) or the monotonic `deadline` passes (None)."""
        raise NotImplementedError

    def reap(self):
        """After a stop that nobody waited for: collect what is left of the job."""


class LocalJob(ClusterJob):
    """`/bin/sh job.sh` here, in its own process group (so signals reach what it started)."""

    proc = None

    def start(self):  # the process is spawned in wait(), once the job is not paused
        self.job_id = "local"

    def _spawn(self):
        with open(self.files.out, "wb") as out, open(self.files.err, "wb") as err:
            self.proc = subprocess.Popen(["/bin/sh", self.files.script], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
        self.job_id = f"local:{self.proc.pid}"
        self.started = True

    def wait(self, deadline):
        with self.cond:  # held (paused before it started): start once unpaused
            while not self.started:
                if self.stopped:
                    self.finished = True
                    return Outcome(aborted=True)
                if not self.paused:
                    self._spawn()
                    break
                if not self.cond.wait(_remaining(deadline)) and _passed(deadline):
                    return None
        if not _wait_pid(self.proc, deadline):
            return None
        with self.cond:  # reap under the lock: no signal ever goes to a recycled group
            code = self.proc.wait()
            self.finished = True
        sig = _signal.Signals(-code).name if code < 0 else None
        return Outcome(exit_status=code if code >= 0 else None, signal=sig,
                       aborted=self.stopped)

    def reap(self):
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _log.debug("job %s still running 5 s after its end: left unreaped",
                           self.proc.pid)

    def _group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass  # the job's group has ended
        except PermissionError:
            _log.debug("signal %s to job %s was not allowed", sig, self.proc.pid,
                       exc_info=True)

    def _pause(self):
        self._group(_signal.SIGSTOP)

    def _unpause(self):
        self._group(_signal.SIGCONT)

    def _stop(self):
        self._group(_signal.SIGKILL)


def _wait_pid(proc, deadline) -> bool:
    """Block until `proc` exits (True) or the deadline passes (False), on a pidfd."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd: Popen's own wait
        try:
            proc.wait(_remaining(deadline))
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        ready, _, _ = select.select([fd], [], [], _remaining(deadline))
        return bool(ready)
    finally:
        os.close(fd)


def _remaining(deadline):
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _passed(deadline) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _wait_slice(deadline, drmaa) -> int:
    """Seconds for one DRMAA wait (it counts whole seconds): what is left -- but at most one
    in the main thread, where a Ctrl-C must not wait for a call into C to return."""
    left = _remaining(deadline)
    if threading.current_thread() is threading.main_thread():
        left = 1 if left is None else min(left, 1)
    return drmaa.Session.TIMEOUT_WAIT_FOREVER if left is None else math.ceil(left)


class GridJob(ClusterJob):
    """`/bin/sh job.sh` submitted through DRMAA, output and errors directed into the job's
    directory (which, on a cluster of several hosts, must be on a shared filesystem:
    NBPAR_JOB_DIR chooses where it is made)."""

    def __init__(self, files, name, native_spec, session):
        super().__init__(files)
        if re.search(r"\s", files.dir):
            raise ValueError(f"the job directory {files.dir!r} contains white space, which the "
                             f"grid engine splits: set NBPAR_JOB_DIR to a path without it")
        self.name = name
        self.native_spec = native_spec
        self.session = session if session is not None else shared_session()
        self.drmaa = import_drmaa()

    def start(self):
        with self.cond:
            if self.stopped:
                return
            drmaa, s = self.drmaa, self.session
            jt = s.createJobTemplate()
            try:
                jt.remoteCommand = "/bin/sh"
                jt.args = [self.files.script]
                jt.jobName = self.name
                jt.workingDirectory = os.getcwd()
                jt.outputPath = ":" + self.files.out
                jt.errorPath = ":" + self.files.err
                if self.native_spec:
                    jt.nativeSpecification = self.native_spec
                if self.paused:
                    jt.jobSubmissionState = drmaa.JobSubmissionState.HOLD_STATE
                self.job_id = s.runJob(jt)
            finally:
                s.deleteJobTemplate(jt)
            self.started = True

    def wait(self, deadline):
        if not self.started:  # stopped before it was submitted
            self.finished = True
            return Outcome(aborted=True)
        drmaa = self.drmaa
        while True:
            try:
                info = self.session.wait(self.job_id, _wait_slice(deadline, drmaa))
                break
            except drmaa.errors.ExitTimeoutException:
                if _passed(deadline):
                    return None
            except Exception as exc:
                if "code 24" not in str(exc):  # SGE: deleted before it ran, no usage to report
                    raise
                info = None
                break
        with self.cond:
            self.finished = True
        if info is None:
            return Outcome(aborted=True)
        return Outcome(exit_status=info.exitStatus if info.hasExited else None,
                       signal=(info.terminatedSignal or "a signal") if info.hasSignal else None,
                       aborted=bool(info.wasAborted))

    def _control(self, *actions):
        for action in actions:  # the job may have moved on (started, finished) meanwhile
            try:
                self.session.control(self.job_id, action)
            except Exception:  # noqa: BLE001 - e.g. suspending a queued job: held instead
                _log.debug("DRMAA %s on job %s failed", action, self.job_id, exc_info=True)

    def _pause(self):  # hold first: then it cannot start between the two
        A = self.drmaa.JobControlAction
        self._control(A.HOLD, A.SUSPEND)

    def _unpause(self):
        A = self.drmaa.JobControlAction
        self._control(A.RELEASE, A.RESUME)

    def _stop(self):
        self._control(self.drmaa.JobControlAction.TERMINATE)


# ----------------------------------------------------------------------------- DRMAA

_session_lock = threading.Lock()
_session = None
_session_pid = None


class DrmaaUnavailable(NbparError, RuntimeError):
    """This process cannot use DRMAA (see the module docstring for what it needs)."""


def import_drmaa():
    try:
        import drmaa
    except ImportError as exc:
        raise DrmaaUnavailable("run_job needs the drmaa package (pip install 'nbpar[cluster]'), "
                               f"or run_locally=True: {exc}") from exc
    except OSError as exc:
        hint = os.environ.get("NBPAR_DRMAA_PRELOAD", "libjemalloc.so.2")
        raise DrmaaUnavailable(
            f"libdrmaa could not be loaded into this process ({exc}); start Python with "
            f"LD_PRELOAD={hint} (the grid engine's library links jemalloc, which cannot be "
            f"loaded into a running process)") from exc
    except RuntimeError as exc:
        raise DrmaaUnavailable(f"{exc} (the grid engine's environment is not set: source "
                               f"its settings file, e.g. /etc/profile.d/nbpar-sge.sh)") from exc
    return drmaa


def shared_session():
    """The process's DRMAA session, opened on first use and closed at exit (one per process,
    as DRMAA allows; every thread shares it)."""
    global _session, _session_pid
    with _session_lock:
        if _session is None or _session_pid != os.getpid():
            drmaa = import_drmaa()
            session = drmaa.Session()
            try:
                session.initialize()
            except drmaa.errors.AlreadyActiveSessionException:
                raise DrmaaUnavailable(
                    "this process inherited a DRMAA session from the process that forked it; "
                    "call run_job from threads (start_method='threading') of that process"
                ) from None
            _session, _session_pid = session, os.getpid()
        return _session


def close_session():
    """End this process's DRMAA session, if it has one (at exit)."""
    global _session
    with _session_lock:
        if _session is not None and _session_pid == os.getpid():
            try:
                _session.exit()
            except Exception:  # noqa: BLE001 - at exit: nothing left to tell
                _log.debug("ending the DRMAA session failed", exc_info=True)
        _session = None
