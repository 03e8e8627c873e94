"""Schedulers, named jobs limits and logging across workers, with real processes."""

import logging
import threading

import psutil
import pytest

import nbpar
import sched_tasks
import tasks

METHODS = ["fork", "forkserver", "spawn", "threading"]


def test_named_jobs_limit_is_one_cap_for_every_map_naming_it(tmp_path):
    path = str(tmp_path / "stamps")
    with nbpar.WorkerPool(4, start_method="fork") as pool:
        maps = [threading.Thread(target=pool.map, kwargs=dict(
            func=lambda x: sched_tasks.stamped(path, x, 0.05), iterable=range(k, k + 12),
            chunk_size=1, limit=nbpar.JobsLimit(2, "ftp_download_limit"))) for k in (0, 100)]
        for t in maps:
            t.start()
        for t in maps:
            t.join(60)
    rows = tasks.read_stamps(path)
    assert len(rows) == 24
    assert sched_tasks.max_overlap(rows) <= 2  # two maps, one cap of 2
    firsts = {x < 100 for x, *_ in rows}
    assert firsts == {True, False}


def test_an_unnamed_limit_caps_its_own_map(tmp_path):
    path = str(tmp_path / "stamps")
    with nbpar.WorkerPool(4, start_method="fork") as pool:
        pool.map(lambda x: sched_tasks.stamped(path, x, 0.03), range(12), chunk_size=1,
                 limit=nbpar.JobsLimit(1))
    assert sched_tasks.max_overlap(tasks.read_stamps(path)) == 1


def test_bad_limit_is_refused():
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(TypeError, match="JobsLimit"):
            pool.map(tasks.square, range(3), limit=3)
    with pytest.raises(ValueError):
        nbpar.JobsLimit(0, "x")


def test_max_memory_scheduler_holds_the_budget(tmp_path):
    path = str(tmp_path / "stamps")
    limit = 200 * 2**20  # two 80 MB tasks beside the workers' own few MB; never three
    peaks = []
    stop = threading.Event()
    with nbpar.WorkerPool(3, start_method="fork",
                          scheduler=nbpar.MaxMemoryScheduler(limit)) as pool:
        def sample():  # the workers' measured memory while the map runs
            while not stop.wait(0.01):
                procs = [w.pid for w in pool.report().workers if w.pid]
                total = 0
                for pid in procs:
                    try:
                        total += psutil.Process(pid).memory_full_info().uss
                    except psutil.Error:
                        pass
                peaks.append(total)
        sampler = threading.Thread(target=sample)
        sampler.start()
        pool.map(lambda x: sched_tasks.stamped(path, x, 0.15, 80), range(9), chunk_size=1,
                 memory=lambda x: 80 * 2**20)
        stop.set()
        sampler.join()
    rows = tasks.read_stamps(path)
    assert len(rows) == 9
    assert sched_tasks.max_overlap(rows) == 2  # a third 80 MB task never fits beside two
    assert max(peaks) <= limit  # and what the workers really held stayed under the limit


def test_longer_first_shortens_a_skewed_makespan(tmp_path):
    durations = [0.1] * 8 + [0.8]  # the long task comes last in the input

    def makespan(scheduler):
        path = str(tmp_path / f"stamps-{scheduler}")
        with nbpar.WorkerPool(2, start_method="fork", scheduler=scheduler) as pool:
            pool.map(lambda pair: sched_tasks.sleep_for(path, pair),
                     list(enumerate(durations)), chunk_size=1, duration=lambda pair: pair[1])
        rows = tasks.read_stamps(path)
        return max(r[2] for r in rows) - min(r[1] for r in rows), rows

    plain, _ = makespan(None)
    longer_first, rows = makespan(nbpar.LongerFirstScheduler())
    first_round = [r[0] for r in sorted(rows, key=lambda r: r[1])[:2]]
    assert 8 in first_round  # the long one started first (one of the two workers took it)
    assert longer_first < plain - 0.2, (longer_first, plain)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):  # Handler.handle holds the handler's own lock around this
        self.records.append(record)


@pytest.mark.parametrize("method", METHODS)
def test_worker_log_records_arrive_whole_and_once(method):
    handler = Collect()
    logger = logging.getLogger("nbpar.test.chatty")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with nbpar.WorkerPool(3, start_method=method) as pool:
            assert pool.map(sched_tasks.chatty, range(60), chunk_size=1) == list(range(60))
    finally:
        logger.removeHandler(handler)
    infos = [r.getMessage() for r in handler.records if r.levelno == logging.INFO]
    assert len(infos) == 60
    for x in range(60):
        (text,) = [t for t in infos if t.startswith(f"BEGIN {x}\n")]
        lines = text.split("\n")
        assert lines[-1] == f"END {x}" and len(lines) == 22  # whole, never torn or mixed
        assert all(line.startswith(f"record {x} line ") for line in lines[1:-1])
    if method != "threading":  # the pool's default level (INFO) leaves debug in the workers
        assert not [r for r in handler.records if r.levelno == logging.DEBUG]
        assert {getattr(r, "nbpar_worker", None) for r in handler.records} <= {0, 1, 2}


def test_log_level_option_lets_debug_through():
    handler = Collect()
    logger = logging.getLogger("nbpar.test.chatty")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with nbpar.WorkerPool(2, start_method="forkserver", log_level=logging.DEBUG) as pool:
            pool.map(sched_tasks.chatty, range(4))
    finally:
        logger.removeHandler(handler)
    assert len([r for r in handler.records if r.levelno == logging.DEBUG]) == 4


def test_log_records_reach_the_output_sink_tagged():
    lines = []
    with nbpar.WorkerPool(1, start_method="fork",
                          on_output=lambda wid, stream, line: lines.append((wid, stream, line))
                          ) as pool:
        pool.map(sched_tasks.chatty, [5])
    assert any(s == "log" and line.startswith("INFO nbpar.test.chatty: BEGIN 5")
               for _, s, line in lines)
