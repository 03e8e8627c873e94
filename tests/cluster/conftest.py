"""A real Son of Grid Engine for the run_job tests, and a process that may talk to it.

`sge` makes sure the single-node engine runs, starting it with the project's
../shared/cluster/start_sge.sh when it does not (idempotent; ~20 s on a fresh machine, ~4 s
on a configured one). Where it cannot start, the grid tests are skipped -- except in CI
(CI=true), where they fail instead.

`grid` is a helper process started with libjemalloc preloaded, as libdrmaa needs (a process
cannot load it late, and this one starts without it so that the rest of the suite runs on the
ordinary allocator): the tests hand it calls from gridtasks.py and get their results or their
exceptions (JobError included) back.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START_SGE = Path(os.environ.get("NBPAR_SGE_SCRIPTS", REPO.parent / "shared" / "cluster")) \
    / "start_sge.sh"
SETTINGS = Path("/etc/profile.d/nbpar-sge.sh")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _settings_env() -> dict | None:
    """The environment the engine's settings file sets, or None without the file."""
    if not SETTINGS.exists():
        return None
    out = subprocess.run(["bash", "-c", f"source {SETTINGS} && env -0"], capture_output=True,
                         timeout=30, check=True).stdout
    return dict(line.split("=", 1) for line in out.decode().split("\0") if "=" in line)


def _ready(env) -> bool:
    """The queue instance has reported in (no 'a'larm / 'u'nknown state)."""
    try:
        out = subprocess.run(["qstat", "-f", "-q", "all.q"], env=env, capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("all.q@")]
    return out.returncode == 0 and any(len(row) == 5 for row in rows)  # no state column


def _unavailable(why):
    if IN_CI:
        pytest.fail(f"the grid engine is needed in CI: {why}", pytrace=False)
    pytest.skip(f"no grid engine here: {why}")


@pytest.fixture(scope="session")
def sge():
    """The engine's environment (SGE_ROOT, SGE_CELL, DRMAA_LIBRARY_PATH, NBPAR_DRMAA_PRELOAD)."""
    env = _settings_env()
    if env is None or not _ready(env):
        if not START_SGE.exists():
            _unavailable(f"{START_SGE} not found")
        if os.geteuid() != 0:
            _unavailable("start_sge.sh needs root")
        started = time.monotonic()
        run = subprocess.run(["bash", str(START_SGE)], capture_output=True, text=True,
                             timeout=600)
        if run.returncode != 0:
            _unavailable(f"start_sge.sh failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        print(f"grid engine started in {time.monotonic() - started:.1f} s")
        env = _settings_env()
        if env is None or not _ready(env):
            _unavailable("start_sge.sh ran but the queue is not ready")
    preload = env.get("NBPAR_DRMAA_PRELOAD")
    if not preload or not os.path.exists(preload):
        _unavailable(f"libjemalloc ({preload}) not found")
    return env


class Grid:
    """Calls into the helper process, plus what the tests ask of the engine directly."""

    def __init__(self, executor, env):
        self.executor = executor
        self.env = env

    def call(self, func, *args, **kwargs):
        """func(*args, **kwargs) in the helper process (two minutes at most)."""
        return self.executor.submit(func, *args, **kwargs).result(120)

    def jobs(self) -> dict:
        """Job name -> SGE state letters ("r", "qw", "hqw", "hs", ...) of every job in the
        engine."""
        out = subprocess.run(["qstat", "-xml"], env=self.env, capture_output=True, text=True,
                             timeout=20, check=True).stdout
        return {job.findtext("JB_name"): job.findtext("state")
                for job in ET.fromstring(out).iter("job_list")}

    def delete_all(self):
        subprocess.run(["qdel", "-u", "*", "*"], env=self.env, capture_output=True, timeout=20)


@pytest.fixture(scope="session")
def grid(sge):
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in sge.items() if os.environ.get(k) != v})
    os.environ["LD_PRELOAD"] = sge["NBPAR_DRMAA_PRELOAD"]
    try:  # the helper is spawned now, with this environment
        executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        executor.submit(os.getpid).result(60)
    finally:  # put back only what changed: rewriting every variable moves the environment,
        # after which setproctitle cannot find this process's command line (the workers of
        # fork pools started later would keep the caller's)
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update({k: v for k, v in saved.items() if os.environ.get(k) != v})
    yield Grid(executor, sge)
    executor.shutdown(wait=True, cancel_futures=True)
