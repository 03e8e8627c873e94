"""The map family, under every start method, against the serial answer."""

import asyncio
import concurrent.futures
import functools
import inspect
import itertools

import pytest

import nbpar
import sched_tasks
import tasks

METHODS = ["fork", "forkserver", "spawn", "threading"]


@pytest.fixture(params=METHODS)
def pool(request):
    with nbpar.WorkerPool(2, start_method=request.param, keep_alive=True) as p:
        yield p


def test_map_keeps_input_order(pool):
    assert pool.map(tasks.square, range(2000)) == [x * x for x in range(2000)]


def test_map_unordered_returns_every_result(pool):
    assert sorted(pool.map_unordered(tasks.square, range(500))) == [x * x for x in range(500)]


def test_starmap_unpacks_items(pool):
    assert pool.starmap(tasks.add, [(i, 2 * i) for i in range(100)]) == [3 * i for i in range(100)]


def test_imap_streams_in_order(pool):
    assert list(pool.imap(tasks.square, range(300))) == [x * x for x in range(300)]


def test_imap_unordered_streams_everything(pool):
    assert sorted(pool.imap_unordered(tasks.square, iter(range(300)))) == [
        x * x for x in range(300)]


def test_apply_async_and_submit(pool):
    res = pool.apply_async(tasks.add, (2, 3))
    assert res.get(timeout=30) == 5 and res.ready() and res.successful()
    fut = pool.submit(tasks.add, 4, b=6)
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=30) == 10


def test_submit_failure_lands_in_the_future(pool):
    fut = pool.submit(tasks.raise_at, 7)
    with pytest.raises(ValueError, match="bad item 7"):
        fut.result(timeout=30)
    assert pool.submit(tasks.square, 3).result(timeout=30) == 9


def test_lambdas_and_closures_from_the_caller(pool):
    offset = 17
    assert pool.map(lambda x: x + offset, range(50)) == [x + 17 for x in range(50)]

    def make(k):
        return lambda x: x * k
    assert pool.map(make(3), range(5)) == [0, 3, 6, 9, 12]


@pytest.mark.parametrize("method", METHODS)
def test_imap_reads_a_lazy_iterable_lazily(method):
    """An endless generator: results stream while the pool reads only a bounded way ahead."""
    read = itertools.count()

    def endless():
        for i in itertools.count():
            next(read)
            yield i

    with nbpar.WorkerPool(2, start_method=method) as pool:
        out = []
        for value in pool.imap(tasks.square, endless()):
            out.append(value)
            if len(out) == 5000:
                break
        assert out == [x * x for x in range(5000)]
        ahead = next(read) - 5000
        assert ahead <= nbpar.pool._READ_AHEAD, f"read {ahead} items beyond what was consumed"


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_chunk_size_overrides_batching(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        pids = pool.map(tasks.pid_of, range(40), chunk_size=10)
    for start in range(0, 40, 10):
        assert len(set(pids[start:start + 10])) == 1  # one batch, one worker


def test_adaptive_batches_grow_for_tiny_tasks():
    """200k tiny items finish quickly: per-item round trips would take far longer."""
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        out = pool.map(tasks.square, range(200_000))
        report = pool.report()
    assert out[-1] == 199_999 ** 2
    assert report.done == 200_000 and report.status == "finished"


@pytest.mark.parametrize("method", METHODS)
def test_executor_is_a_concurrent_futures_executor(method):
    with nbpar.Executor(2, start_method=method) as ex:
        assert isinstance(ex, concurrent.futures.Executor)
        futs = [ex.submit(tasks.square, i) for i in range(20)]
        assert [f.result(timeout=30) for f in futs] == [i * i for i in range(20)]
        assert list(ex.map(tasks.add, range(5), range(5))) == [0, 2, 4, 6, 8]


def test_executor_shutdown_cancels_pending_futures():
    import threading
    started = threading.Event()

    def first_task():
        started.set()
        return tasks.nap(0, 0.3)

    ex = nbpar.Executor(1, start_method="threading")
    first = ex.submit(first_task)
    queued = [ex.submit(tasks.nap, i, 0.3) for i in range(1, 6)]
    assert started.wait(10)
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result() == 0
    assert any(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError):
        ex.submit(tasks.square, 2)


def test_worker_id_state_init_and_exit():
    with nbpar.WorkerPool(2, start_method="forkserver", pass_worker_id=True,
                          use_worker_state=True, worker_init=tasks.init_state,
                          worker_exit=tasks.exit_state) as pool:
        out = pool.map(tasks.with_id_and_state, range(50), chunk_size=5)
        exits = pool.get_exit_results()
    assert {wid for wid, _ in out} <= {0, 1}
    for wid in {wid for wid, _ in out}:  # state lives as long as the worker: counts rise
        counts = [n for w, n in out if w == wid]
        assert counts == sorted(counts) and counts[0] == 1
    # every worker retires and reports, also one that got no task
    assert sorted(exits) == [(wid, max((n for w, n in out if w == wid), default=0))
                             for wid in (0, 1)]


def test_keep_alive_keeps_workers_between_maps():
    with nbpar.WorkerPool(2, start_method="forkserver", keep_alive=True) as pool:
        first = set(pool.map(tasks.pid_of, range(20), chunk_size=1))
        second = set(pool.map(tasks.pid_of, range(20), chunk_size=1))
        workers = {w.pid for w in pool.report().workers}
    assert len(workers) == 2 and first | second <= workers  # the same two processes served both


def test_without_keep_alive_workers_are_new_per_map():
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        first = set(pool.map(tasks.pid_of, range(20), chunk_size=1))
        second = set(pool.map(tasks.pid_of, range(20), chunk_size=1))
    assert not first & second


def test_max_tasks_per_worker_replaces_workers():
    with nbpar.WorkerPool(1, start_method="fork", max_tasks_per_worker=3) as pool:
        pids = pool.map(tasks.pid_of, range(9), chunk_size=1)
    assert [len(set(pids[i:i + 3])) for i in (0, 3, 6)] == [1, 1, 1]
    assert len(set(pids)) == 3


def _breaks_after(n):
    """A generator that yields 0..n-1, then raises: an input that fails midway."""
    yield from range(n)
    raise OSError("the source broke")


@pytest.mark.parametrize("ordered", [True, False], ids=["imap", "imap_unordered"])
@pytest.mark.parametrize("method", METHODS)
def test_imap_over_an_input_that_raises_yields_what_was_read_then_the_input_error(
        method, ordered):
    """As multiprocessing's imap does: every item read before the input failed is run and
    yielded, then the input's own error is raised, named as an input error, and it is in
    the report's errors."""
    got = []
    with nbpar.WorkerPool(2, start_method=method) as pool:
        stream = (pool.imap if ordered else pool.imap_unordered)(
            tasks.nap, _breaks_after(30), chunk_size=1)
        with pytest.raises(OSError, match="the source broke") as err:
            for value in stream:
                got.append(value)
        report = pool.report()
    assert (got if ordered else sorted(got)) == list(range(30))
    assert any("raised by the input iterable after 30 items" in note
               for note in getattr(err.value, "__notes__", [])), err.value
    assert report.status == "failed"
    (error,) = report.errors
    assert error.index is None and error.type == "OSError"
    assert "input iterable raised after 30 items" in error.message
    assert "the source broke" in error.traceback


@pytest.mark.parametrize("peer", ["multiprocessing.Pool", "nbpar"])
def test_imap_over_a_failing_input_as_multiprocessing_does(peer):
    """The promise is multiprocessing's: the same test, run against it and against nbpar."""
    import multiprocessing
    pool = (multiprocessing.get_context("fork").Pool(2) if peer != "nbpar"
            else nbpar.WorkerPool(2, start_method="fork"))
    got = []
    with pool:
        with pytest.raises(OSError, match="the source broke"):
            for value in pool.imap(tasks.square, _breaks_after(30)):
                got.append(value)
    assert got == [x * x for x in range(30)]


# -- one spec behind every face: the same keywords, the same checks, sync or awaited
LIST_FACES = ["map", "starmap", "map_unordered", "map_async", "starmap_async",
              "map_unordered_async"]
LAZY_FACES = ["imap", "imap_unordered", "imap_async", "imap_unordered_async"]


@pytest.mark.parametrize("faces", [LIST_FACES, LAZY_FACES], ids=["list", "lazy"])
def test_every_face_of_a_kind_takes_the_same_keywords(faces):
    def keywords(name):
        return [(p.name, p.kind, p.default) for p in
                inspect.signature(getattr(nbpar.WorkerPool, name)).parameters.values()]

    first = keywords(faces[0])
    assert "memory" in [k[0] for k in first] and "duration" in [k[0] for k in first]
    for name in faces[1:]:
        assert keywords(name) == first, name


def test_map_unordered_async_gives_every_result():
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        got = asyncio.run(pool.map_unordered_async(tasks.square, range(50)))
    assert sorted(got) == [x * x for x in range(50)]


@pytest.mark.parametrize("face", LIST_FACES + LAZY_FACES)
def test_a_wrong_keyword_names_the_face_called(face):
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(TypeError, match=rf"^{face}\(\) got an unexpected keyword "
                                            r"argument 'chunksize'"):
            made = getattr(pool, face)(tasks.square, [1, 2], chunksize=1)
            if inspect.iscoroutine(made):
                asyncio.run(made)


@pytest.mark.parametrize("face", ["imap", "imap_async"])
def test_a_lazy_map_declares_memory_to_the_scheduler(face, tmp_path):
    """A declared size beyond the budget lets one task run at a time: the declaration
    reached the scheduler (three would overlap otherwise)."""
    path = str(tmp_path / "stamps")
    budget = 10**12
    with nbpar.WorkerPool(3, start_method="threading",
                          scheduler=nbpar.MaxMemoryScheduler(budget)) as pool:
        made = getattr(pool, face)(functools.partial(sched_tasks.stamped, path), range(6),
                                   chunk_size=1, memory=lambda x: 2 * budget)
        if face == "imap":
            list(made)
        else:
            async def drain():
                return [x async for x in made]
            asyncio.run(drain())
    rows = tasks.read_stamps(path)
    assert len(rows) == 6
    assert sched_tasks.max_overlap(rows) == 1
