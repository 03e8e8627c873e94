"""The chaos run: many small maps under random worker kills, signals from another thread and
task failures. Every map either returns the complete, correct list, or raises a documented
error with a report in which done + failed + pending account for every item exactly once.
No map may hang (a watchdog fails the run and names the seed) and no process is left behind.

Seeded: NBPAR_CHAOS_SEED replays a run. NBPAR_CHAOS_MAPS sets how many maps per start method
(CI runs the short version; `NBPAR_CHAOS_MAPS=5000 pytest tests/reliability` the long one).
"""

import os
import random
import signal
import threading

import pytest

import chaos_tasks
import nbpar

MAPS = int(os.environ.get("NBPAR_CHAOS_MAPS", "500"))
SEED = int(os.environ.get("NBPAR_CHAOS_SEED", "20261122"))
WATCHDOG = 20.0  # seconds one small map may take before it counts as a hang
DOCUMENTED = (ValueError, nbpar.WorkerDiedError, nbpar.StoppedError)
METHODS = ["fork", "forkserver"]


def busy_pids(pool):
    return [w.pid for w in pool.report().workers if w.state == "busy" and w.pid]


def chaos_agent(pool, rng, action, done):
    """Another thread: at a random moment, kill a busy worker or send signals."""
    done.wait(rng.uniform(0.0, 0.03))
    if done.is_set():
        return
    if action == "kill":
        pids = busy_pids(pool)
        if pids:
            try:
                os.kill(rng.choice(pids), signal.SIGKILL)
            except ProcessLookupError:
                pass
    elif action == "halt":
        pool.halt()
        done.wait(rng.uniform(0.0, 0.02))
        pool.resume()
    elif action == "stop":
        pool.stop()
    elif action == "stop_now":
        pool.stop(now=True)


def check_accounting(n, report, error, seed, k):
    where = f"(seed {seed}, map {k})"
    done = set(report.results)
    failed = {e.index for e in report.errors}
    pending = set(report.pending_indices)
    assert not (done & failed) and not (done & pending) and not (failed & pending), where
    assert done | failed | pending == set(range(n)), where
    assert report.done == len(done) and report.failed == len(failed), where
    assert all(report.results[i] == i * 7 for i in done), where
    if isinstance(error, ValueError):
        assert failed, where


def run_one(pool, rng, seed, k):
    n = rng.randint(1, 60)
    plan = {"fail": set(rng.sample(range(n), 1)) if rng.random() < 0.15 else set(),
            "sleep": rng.choice([0.0, 0.0005, 0.002])}
    action = rng.choice(["none", "none", "kill", "halt", "stop", "stop_now"])
    chunk_size = rng.choice([None, 1, 4])
    outcome = {}

    def call():
        try:
            items = [(x, x in plan["fail"], plan["sleep"]) for x in range(n)]
            outcome["result"] = pool.starmap(chaos_tasks.chaos_task, items,
                                             chunk_size=chunk_size)
        except BaseException as exc:  # noqa: BLE001 - judged below
            outcome["error"] = exc

    done = threading.Event()
    runner = threading.Thread(target=call)
    agent = threading.Thread(target=chaos_agent, args=(pool, rng, action, done))
    runner.start()
    agent.start()
    runner.join(WATCHDOG)
    done.set()
    agent.join(WATCHDOG)
    assert not runner.is_alive(), f"map {k} hung (seed {seed}, action {action}, n {n})"
    pool.resume()  # a STOP may have met the tail of a HALT sequence: leave the pool running
    if "result" in outcome:
        assert outcome["result"] == [x * 7 for x in range(n)], (seed, k)
        assert not plan["fail"] or action in ("kill", "stop", "stop_now"), (seed, k)
        return "ok"
    error = outcome["error"]
    assert isinstance(error, DOCUMENTED), (seed, k, repr(error))
    report = error.report if isinstance(error, nbpar.StoppedError) else pool.report()
    check_accounting(n, report, error, seed, k)
    return type(error).__name__


@pytest.mark.timeout(600)
@pytest.mark.parametrize("method", METHODS)
def test_chaos(method):
    seed = SEED + METHODS.index(method)
    rng = random.Random(seed)
    counts: dict = {}
    with nbpar.WorkerPool(2, start_method=method, keep_alive=True) as pool:
        for k in range(MAPS):
            kind = run_one(pool, rng, seed, k)
            counts[kind] = counts.get(kind, 0) + 1
        assert pool.starmap(chaos_tasks.chaos_task, [(x, False, 0) for x in range(10)]) == [
            x * 7 for x in range(10)]
    print(f"chaos {method} seed {seed}: {counts}")
    assert counts.get("ok", 0) > MAPS // 4  # most maps survive their chaos
