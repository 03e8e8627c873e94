"""run_job: a shell command run as a grid-engine job (DRMAA) or as a local process, waited
for without polling; its output returned, its failure raised as `nbpar.JobError`.

    run_job(cmd)
      │ a fresh directory: job.sh (the command, verbatim), job.out, job.err
      ├─ run_locally ──► _LocalJob: /bin/sh job.sh in its own process group; waits on a pidfd
      └─ otherwise ────► _GridJob: DRMAA runJob of /bin/sh job.sh, -o/-e into the directory;
      │                  session.wait(timeout) -- the process-wide DRMAA session
      ▼
    _Outcome (exit status, signal, aborted, timed out) ──► (stdout, stderr) or JobError

Both kinds of job go through the same path, so `run_locally=True` behaves as the grid does.
The command travels as a script, never as arguments: `qsub -b y` loses shell quoting, and a
fresh directory per job sidesteps SGE appending to existing output files.

Steering: a running job is registered with the thread that started it. `_Steering` observes
every pool's signals (nbpar.pool.signal_observers); when a pool whose worker threads started
jobs is HALTed, their queued jobs are held and running ones suspended (SIGSTOP locally), RESUME
and STOP release and resume them (STOP lets running tasks finish), STOP_RIGHTNOW terminates
them (SIGKILL locally) once the Boss has the signal. Jobs started later by a halted pool's
threads start held. This reaches jobs started from `start_method="threading"` workers: process
workers have their own DRMAA sessions, out of the caller's reach.

DRMAA: `import drmaa` happens on the first grid job only. libdrmaa links jemalloc, which a
running process cannot load late ("cannot allocate memory in static TLS block"): the process
must start with LD_PRELOAD naming libjemalloc (the engine's setup exports its path as
NBPAR_DRMAA_PRELOAD), and DRMAA_LIBRARY_PATH and SGE_ROOT set.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import select
import shutil
import signal as _signal
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass

from . import pool as _pool
from .errors import JobError, NbparError, describe
from .signals import Signal

_STOP_GRACE = 30  # seconds to wait for a terminated job to be reported gone
_TAIL = 2000  # characters of stderr quoted in a JobError's message


def run_job(cmd, *, job_name=None, queue=None, native_options=None, run_locally=False,
            touch_only=None, session=None, logger=None, timeout=None):
    """Run the shell command `cmd` as a grid-engine job and wait for it.

    Returns `(stdout, stderr)` as text. Raises `nbpar.JobError` (exit status, signal, stdout,
    stderr) when the job exits non-zero, is killed by a signal or is aborted, and when it
    runs longer than `timeout` seconds (it is then terminated). `queue` and `native_options`
    (a string, or a list of strings, of qsub options such as "-l h_vmem=2G") go into the
    DRMAA native specification; `session` is a drmaa.Session to use instead of the shared one;
    `logger` gets a line as the job is submitted and as it ends. `run_locally=True` runs the
    command on this machine instead, through the same path; `touch_only=PATHS` runs nothing
    and only touches those files (creating them if missing). The command runs under /bin/sh,
    in the caller's current directory.
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
            job = _LocalJob(files)
        else:
            job = _GridJob(files, _job_name(job_name, cmd), spec, session)
        outcome = _execute(job, timeout, logger)
        stdout, stderr = files.read()
    if outcome.ok:
        return stdout, stderr
    raise JobError(_explain(cmd, job.job_id, outcome, stderr, timeout), cmd=cmd,
                   job_id=job.job_id, exit_status=outcome.exit_status, signal=outcome.signal,
                   aborted=outcome.aborted, timed_out=outcome.timed_out, stdout=stdout,
                   stderr=stderr)


# ----------------------------------------------------------------------------- the common path

@dataclass
class _Outcome:
    exit_status: int | None = None
    signal: str | None = None
    aborted: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return (self.exit_status == 0 and self.signal is None and not self.aborted
                and not self.timed_out)


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


def _execute(job, timeout, logger) -> _Outcome:
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
            outcome = job.wait(time.monotonic() + _STOP_GRACE) or _Outcome(aborted=True)
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


# ----------------------------------------------------------------------------- jobs

class _Job:
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

    def reap(self):
        """After a stop that nobody waited for: collect what is left of the job."""


class _LocalJob(_Job):
    """`/bin/sh job.sh` here, in its own process group (so signals reach what it started)."""

    proc = None

    def start(self):
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
                    return _Outcome(aborted=True)
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
        return _Outcome(exit_status=code if code >= 0 else None, signal=sig,
                        aborted=self.stopped)

    def reap(self):
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def _group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

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


class _GridJob(_Job):
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
        self.drmaa = _import_drmaa()

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
            return _Outcome(aborted=True)
        drmaa = self.drmaa
        timeout = (drmaa.Session.TIMEOUT_WAIT_FOREVER if deadline is None
                   else math.ceil(_remaining(deadline)))  # DRMAA counts whole seconds
        try:
            info = self.session.wait(self.job_id, timeout)
        except drmaa.errors.ExitTimeoutException:
            return None
        except Exception as exc:  # noqa: BLE001
            if "code 24" not in str(exc):  # SGE: deleted before it ran, no usage to report
                raise
            info = None
        with self.cond:
            self.finished = True
        if info is None:
            return _Outcome(aborted=True)
        return _Outcome(exit_status=info.exitStatus if info.hasExited else None,
                        signal=(info.terminatedSignal or "a signal") if info.hasSignal else None,
                        aborted=bool(info.wasAborted))

    def _control(self, *actions):
        for action in actions:  # the job may have moved on (started, finished) meanwhile
            try:
                self.session.control(self.job_id, action)
            except Exception:  # noqa: BLE001 - e.g. suspending a queued job: held instead
                pass

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


def _import_drmaa():
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
            drmaa = _import_drmaa()
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


def _at_exit():
    """Terminate the jobs still running for abandoned tasks, end the DRMAA session."""
    global _session
    for job in _steering.live():
        job.stop()
    with _session_lock:
        if _session is not None and _session_pid == os.getpid():
            try:
                _session.exit()
            except Exception:  # noqa: BLE001
                pass
        _session = None


# ----------------------------------------------------------------------------- steering

def _threads_of(pool) -> set:
    """The worker threads of a threading pool (empty for process pools)."""
    handles = getattr(getattr(pool, "_boss", None), "handles", None) or {}
    return {h.process for h in list(handles.values()) if isinstance(h.process, threading.Thread)}


class _Steering:
    """Makes the live jobs follow the signals of the pools whose threads started them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs: set = set()
        self.halted = weakref.WeakSet()  # pools between HALT and RESUME / STOP
        self.exit_hook = False

    def register(self, job):
        with self.lock:
            if not self.exit_hook:
                self.exit_hook = True
                atexit.register(_at_exit)
            self.jobs.add(job)
            halted = any(job.thread in _threads_of(pool) for pool in list(self.halted))
        if halted:
            job.pause()

    def unregister(self, job):
        with self.lock:
            self.jobs.discard(job)

    def live(self) -> list:
        with self.lock:
            return list(self.jobs)

    def jobs_of(self, pool) -> list:
        threads = _threads_of(pool)
        return [job for job in self.live() if job.thread in threads] if threads else []

    def on_signal(self, pool, signal):
        if signal is Signal.HALT:
            with self.lock:
                self.halted.add(pool)
            for job in self.jobs_of(pool):
                job.pause()
        elif signal in (Signal.RESUME, Signal.STOP, Signal.STOP_RIGHTNOW):
            with self.lock:
                self.halted.discard(pool)
            jobs = self.jobs_of(pool)
            if signal is Signal.STOP_RIGHTNOW:  # after the Boss has it: the tasks count as
                return lambda: [job.stop() for job in jobs]  # stopped, not failed
            for job in jobs:
                job.unpause()
        return None


_steering = _Steering()
_pool.signal_observers.append(_steering.on_signal)
