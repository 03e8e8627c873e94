"""The workloads of the benchmark: each measures several systems side by side, interleaved.

A workload returns a `Result`: samples per system, the reference system its ratios are taken
against, and the target it checks. Timings are medians over interleaved repetitions, so a
noisy machine slows every system alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from . import tasks
from .systems import SYSTEMS

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Result:
    name: str
    what: str
    unit: str
    reference: str
    samples: dict = field(default_factory=dict)  # system -> list of numbers
    target: str = ""
    extra: dict = field(default_factory=dict)  # other figures worth a line
    formats: dict = field(default_factory=dict)  # an extra figure's format (default: ".1%")

    def median(self, system):
        return statistics.median(self.samples[system])

    def ratio(self, system):
        return self.median(system) / self.median(self.reference)


def _interleaved(systems, repeat, measure):
    """Each repetition measures every system once; the order flips from one repetition to the
    next, so no system always runs right after the same neighbour."""
    samples = {name: [] for name in systems}
    for rep in range(repeat):
        for name in (systems if rep % 2 == 0 else systems[::-1]):
            samples[name].append(measure(name))
    return samples


def tiny(systems, repeat, n):
    """200k calls of x*x on warm pools."""
    items = list(range(200_000))
    samples = _warm(systems, repeat, n, tasks.square, items,
                    lambda out: len(out) == len(items) and out[-1] == items[-1] ** 2,
                    warm_items=items)
    return Result("tiny", "200k × x*x, warm pool", "s", "mp.Pool-fork", samples,
                  "nbpar ≤ 1.0 × mp.Pool(fork) (stretch ≤ 0.9)")


def cpu(systems, repeat, n):
    """400 tasks of ~4 ms, cold: start, map, close; and serial in the same run."""
    items = list(range(400))

    def measure(name):
        start = time.perf_counter()
        if name == "serial":
            out = [tasks.spin(x) for x in items]
        else:
            pool = SYSTEMS[name](n)
            out = pool.map(tasks.spin, items)
            pool.close()
        elapsed = time.perf_counter() - start
        assert list(out) == items
        return elapsed
    samples = _interleaved(["serial", *systems], repeat, measure)
    result = Result("cpu", "400 × ~4 ms, cold pool (start + map + close)", "s",
                    "mp.Pool-fork", samples,
                    "nbpar ≤ 1.05 × mp.Pool(fork); parallel efficiency ≥ 90 % (stretch 97 %)")
    serial = statistics.median(samples["serial"])
    result.extra["parallel efficiency"] = {
        name: serial / (n * statistics.median(samples[name])) for name in systems}
    return result


def startup(systems, repeat, n):
    """A pool of n, one trivial task, close; every system warmed once in this process."""
    for name in systems:  # the stdlib keeps its fork server between pools, and so does nbpar
        pool = SYSTEMS[name](n)
        pool.apply(tasks.trivial, 1)
        pool.close()

    def measure(name):
        start = time.perf_counter()
        pool = SYSTEMS[name](n)
        assert pool.apply(tasks.trivial, 1) == 1
        pool.close()
        return time.perf_counter() - start
    return Result("startup", "pool of 2 + one trivial task + close", "s",
                  "mp.Pool-forkserver", _interleaved(systems, repeat, measure),
                  "nbpar ≤ 1.0 × mp.Pool(forkserver)")


def apply(systems, repeat, n, calls=200):
    """apply_async round trip on a warm pool (median of `calls` per repetition)."""
    with _opened(systems, n) as pools:
        for pool in pools.values():
            for _ in range(20):
                pool.apply(tasks.trivial, 1)

        def measure(name):
            times = []
            for i in range(calls):
                start = time.perf_counter()
                pools[name].apply(tasks.trivial, i)
                times.append(time.perf_counter() - start)
            return statistics.median(times)
        samples = _interleaved(systems, repeat, measure)
    return Result("apply", "apply_async round trip, warm pool", "s", "mp.Pool-fork", samples,
                  "nbpar ≤ 1.0 × mp.Pool(fork)")


def inflight(systems, repeat, n, calls):
    """`calls` trivial calls handed over at once (apply_async / submit), then every result
    awaited, on warm pools: what many outstanding calls cost."""
    items = list(range(calls))
    with _opened(systems, n) as pools:
        for pool in pools.values():
            pool.many(tasks.trivial, range(200))

        def measure(name):
            start = time.perf_counter()
            out = pools[name].many(tasks.trivial, items)
            elapsed = time.perf_counter() - start
            assert out == items
            return elapsed
        samples = _interleaved(systems, repeat, measure)
    return Result(f"inflight-{calls // 1000}k", f"{calls:,} apply_async/submit in flight, "
                  f"warm pool", "s", "ProcessPoolExecutor", samples,
                  "nbpar ≤ 1.0 × ProcessPoolExecutor")


def executor_map(systems, repeat, n, calls):
    """Executor.map(trivial, range(calls)) with the default chunksize, warm executors."""
    items = list(range(calls))
    samples = _warm(systems, repeat, n, tasks.trivial, items, lambda out: out == items,
                    warm_items=items[:200])
    return Result(f"executor-map-{calls // 1000}k", f"Executor.map over {calls:,} items, "
                  f"default chunksize, warm", "s", "ProcessPoolExecutor-default", samples,
                  "nbpar.Executor ≤ 1.0 × ProcessPoolExecutor")


def progress(systems, repeat, n):
    """The tiny workload with the progress bar on, against the same system without it.

    A run takes a few tens of milliseconds, so a 3 % effect hides in run-to-run noise: each
    system is measured beside its own bar-less twin only (a second-long MPIRE run between two
    of nbpar's would weigh more than the bar), with three times the repetitions; the median
    paired slowdown -- each run with the bar against the run without it in the same
    repetition, before it in one and after it in the next -- is what drifting load cannot bias.
    """
    blocks: dict = {}
    for name in systems:
        blocks.setdefault(name.removesuffix("+progress"), []).append(name)
    samples = {}
    for block in blocks.values():
        samples.update(tiny(block, 3 * repeat, n).samples)
    paired = {}
    for name in systems:
        plain = name.removesuffix("+progress")
        if name != plain and plain in samples:
            paired[name] = statistics.median(
                b / a - 1 for a, b in zip(samples[plain], samples[name]))
    return Result("progress", "200k × x*x with vs without progress bar", "s", "nbpar",
                  samples, "nbpar+progress ≤ 1.03 × nbpar", {"paired slowdown": paired})


def _in_subprocess(module_args):
    """Run a bench module in a fresh interpreter. It imports nbpar from cached bytecode, as an
    installed package is imported: where PYTHONDONTWRITEBYTECODE is set, each run would
    otherwise compile nbpar's modules anew (~0.1 s in the caller and again in the fork server),
    a cost its peers, installed from compiled wheels, do not pay."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([sys.executable, "-m", *module_args], capture_output=True, text=True,
                         cwd=os.path.dirname(HERE), timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{module_args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def shared(systems, repeat, n):
    """A 400 MB array shared with the workers, 200 slice sums: copies held by the tree."""
    samples = {name: [_in_subprocess(["bench.memory", "shared", name, str(n)])["copies"]
                      for _ in range(max(1, repeat // 3))] for name in systems}
    return Result("shared", "400 MB NumPy array, 200 slice sums: copies in the process tree "
                  "(sum of PSS ÷ array size)", "copies", systems[0], samples,
                  "nbpar ≤ 1.25 copies under fork, forkserver and spawn")


def imap_memory(systems, repeat, n):
    """imap over a generator of 10 million items: how much the caller's memory grows."""
    samples = {name: [_in_subprocess(["bench.memory", "imap", name, str(n)])["growth_mb"]]
               for name in systems}
    return Result("imap-memory", "imap over a generator of 10M items: caller's RSS growth "
                  "after the first million",
                  "MB", systems[0], samples, "nbpar: flat (bounded read-ahead)")


def control(systems, repeat, n):
    """HALT latency, STOP_RIGHTNOW teardown, and how fast a killed worker is reported."""
    samples = _in_subprocess(["bench.control", str(n), str(repeat)])
    return Result("control", "after halt(): last task start; after stop(now=True): workers "
                  "gone; SIGKILLed worker: reported", "s", "halt→last start",
                  {k: v for k, v in samples.items()},
                  "≤ 0.1 s after halt; ≤ 1 s for stop(now) and a killed worker")


def session(systems, repeat, n):
    """Ten pools in a row over a SciPy filter and a shared 20 MB image, each run in a fresh
    interpreter (bench/session.py): what the first pool pays, and what the later ones do."""
    runs = _interleaved(systems, max(1, repeat // 3),
                        lambda name: _in_subprocess(["bench.session", name, str(n)]))
    result = Result("session", "10 pools in a row: 16 × scipy.ndimage.gaussian_filter over "
                    "a shared 20 MB image, fresh interpreter (imports paid in the run)", "s",
                    "nbpar-fork", {name: [r["total"] for r in rs] for name, rs in runs.items()},
                    "nbpar ≤ the fastest peer (mp.Pool, joblib/loky, MPIRE); ≤ 1.1 × nbpar-fork")
    result.extra["first pool's share of the run"] = {
        name: statistics.median(r["first"] / r["total"] for r in rs) for name, rs in runs.items()}
    fork_later = statistics.median(r["later"] for r in runs.get("nbpar-fork", runs[systems[0]]))
    result.extra["a later pool ÷ nbpar-fork's"] = {
        name: statistics.median(r["later"] for r in rs) / fork_later
        for name, rs in runs.items()}
    return result


def matmul(systems, repeat, n):
    """60 NumPy matrix-product tasks on warm pools of n: BLAS threads capped by default
    (n_jobs x threads <= cores, as joblib does) against uncapped (n x cores threads)."""
    items = list(range(60))
    expected = [tasks.matmul(x) for x in items[:3]]
    samples = _warm(systems, repeat, n, tasks.matmul, items,
                    lambda out: len(out) == len(items) and all(
                        abs(a - b) <= 1e-6 * abs(b) for a, b in zip(out, expected)))
    return Result("matmul", f"60 × NumPy 400×400 matmul ×4, warm pool of {n}", "s",
                  "nbpar-no-cap", samples, "nbpar (capped by default) ≤ 1.0 × uncapped")


@contextmanager
def _opened(systems, n):
    """One instance of each system, all closed at the end whatever happens."""
    pools = {name: SYSTEMS[name](n) for name in systems}
    try:
        yield pools
    finally:
        for pool in pools.values():
            pool.close()


def _warm(systems, repeat, n, func, items, check, warm_items=None):
    """Time `map(func, items)` on warm systems, interleaved (warmed with `warm_items`, by
    default a quarter of the items: workers started, code loaded)."""
    with _opened(systems, n) as pools:
        for pool in pools.values():
            pool.map(func, items[:len(items) // 4] if warm_items is None else warm_items)

        def measure(name):
            start = time.perf_counter()
            out = pools[name].map(func, items)
            elapsed = time.perf_counter() - start
            assert check(out)
            return elapsed
        return _interleaved(systems, repeat, measure)


def _throughput(result):
    """Each system's throughput as a share of the reference's (its time ÷ theirs)."""
    base = statistics.median(result.samples[result.reference])
    result.extra["throughput vs local pool"] = {
        name: base / statistics.median(values) for name, values in result.samples.items()}
    return result


def dask_cpu(systems, repeat, n):
    """400 × ~4 ms on a warm LocalCluster(n_workers=n, threads_per_worker=1) vs local."""
    items = list(range(400))
    samples = _warm(systems, repeat, n, tasks.spin, items, lambda out: list(out) == items)
    return _throughput(Result(
        "dask-cpu", "400 × ~4 ms, warm: local process pool vs Dask LocalCluster", "s", "nbpar",
        samples, "nbpar-dask ≥ 90 % of the local pool's throughput (time ratio ≤ 1.11)"))


def dask_tiny(systems, repeat, n):
    """200k × x*x on a warm LocalCluster (dask.bag and plain client.map are left out: with
    a task per item, or dask.bag's per-item graph costs, they take tens of seconds)."""
    items = list(range(200_000))
    samples = _warm(systems, repeat, n, tasks.square, items,
                    lambda out: len(out) == len(items) and out[-1] == items[-1] ** 2)
    return _throughput(Result(
        "dask-tiny", "200k × x*x, warm: local process pool vs Dask LocalCluster", "s", "nbpar",
        samples, "nbpar-dask < 2 s"))


WORKLOADS = {
    "tiny": (tiny, ["nbpar", "nbpar-fork", "mp.Pool-fork", "ProcessPoolExecutor",
                    "joblib-loky", "mpire"]),
    "cpu": (cpu, ["nbpar", "nbpar-fork", "mp.Pool-fork", "ProcessPoolExecutor", "joblib-loky",
                  "mpire", "tqdm.process_map"]),
    "startup": (startup, ["nbpar", "nbpar-fork", "mp.Pool-forkserver", "mp.Pool-fork",
                          "mpire"]),
    "apply": (apply, ["nbpar", "nbpar-fork", "mp.Pool-fork", "ProcessPoolExecutor", "mpire"]),
    **{f"inflight-{k}k": (partial(inflight, calls=k * 1000),
                          ["nbpar", "nbpar.Executor", "ProcessPoolExecutor", "mp.Pool-fork"])
       for k in (1, 4, 16)},
    **{f"executor-map-{k}k": (partial(executor_map, calls=k * 1000),
                              ["nbpar.Executor", "ProcessPoolExecutor-default"])
       for k in (1, 4, 16)},
    "progress": (progress, ["nbpar", "nbpar+progress", "mpire", "mpire+progress"]),
    "shared": (shared, ["nbpar-fork", "nbpar+shared_array", "nbpar-spawn+shared_array",
                        "nbpar", "nbpar-spawn", "mp.Pool-fork", "joblib-loky", "mpire",
                        "mpire-spawn"]),
    "imap-memory": (imap_memory, ["nbpar", "mp.Pool-fork"]),
    "matmul": (matmul, ["nbpar", "nbpar-no-cap", "joblib-loky"]),
    "control": (control, ["nbpar"]),
    "session": (session, ["nbpar", "nbpar-fork", "mp.Pool-fork", "joblib-loky", "mpire"]),
    "dask-cpu": (dask_cpu, ["nbpar", "nbpar-dask", "dask.bag", "client.map",
                            "client.map-chunked"]),
    "dask-tiny": (dask_tiny, ["nbpar", "nbpar-dask", "client.map-chunked"]),
}


def _ecosystem(name):
    """bench/ecosystem.py's workloads, imported when run (they need scikit-learn, pandas)."""
    def run(systems, repeat, n):
        from . import ecosystem
        return getattr(ecosystem, name)(systems, repeat, n)
    return run


WORKLOADS["gridsearch"] = (_ecosystem("gridsearch"), ["joblib-loky", "nbpar-joblib"])
WORKLOADS["pandas-apply"] = (_ecosystem("pandas_apply"), ["pandas", "pandarallel", "nbpar"])


def _scale(workers):
    """bench/scale.py's workload for a pool of `workers` (one Result per map it times)."""
    def run(systems, repeat, n, items=None):
        from . import scale
        return scale.scale(systems, repeat, n, workers, items)
    return run


WORKLOADS.update({f"boss-{k}": (_scale(k), ["nbpar", "nbpar+task_timeout", "mp.Pool-fork",
                                           "ProcessPoolExecutor"])
                  for k in (16, 32, 64)})
