"""`await pool.map_async(...)` and `async for ... in pool.imap_async(...)` in plain asyncio.

While a map is awaited the event loop stays free (another task runs meanwhile); cancelling the
awaiting task stops the map now and keeps what finished.
"""

import asyncio
import os
import time

import pytest

import nbpar

pytestmark = pytest.mark.timeout(60)


def slow_square(x):
    time.sleep(0.05)
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


@pytest.fixture
def pool():
    with nbpar.WorkerPool(2) as p:
        yield p


def test_map_async_keeps_the_loop_free(pool):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        results = await pool.map_async(slow_square, range(20), chunk_size=1)
        task.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert results == [x * x for x in range(20)]
    assert ticks >= 10  # the loop ran other work during the ~0.5 s map


def test_starmap_async(pool):
    assert asyncio.run(pool.starmap_async(pow, [(2, 3), (3, 2)])) == [8, 9]


def test_map_async_raises_the_worker_error(pool):
    with pytest.raises(ValueError, match="three") as info:
        asyncio.run(pool.map_async(fail_on_three, range(5)))
    assert "Traceback" in str(info.value.__cause__)  # the remote traceback


def test_imap_async_ordered_and_unordered(pool):
    async def collect(iterator):
        return [x async for x in iterator]

    assert asyncio.run(collect(pool.imap_async(slow_square, iter(range(12))))) == [
        x * x for x in range(12)]
    got = asyncio.run(collect(pool.imap_unordered_async(slow_square, range(12))))
    assert sorted(got) == [x * x for x in range(12)]


def test_imap_async_raises_the_worker_error(pool):
    async def main():
        return [x async for x in pool.imap_async(fail_on_three, range(5))]

    with pytest.raises(ValueError, match="three"):
        asyncio.run(main())


def test_cancelling_stops_the_map_now():
    with nbpar.WorkerPool(2) as pool:
        async def main():
            task = asyncio.create_task(pool.map_async(time.sleep, [30, 30, 30], chunk_size=1))
            while sum(w.state == "busy" for w in pool.report().workers) < 2:
                await asyncio.sleep(0.02)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

        assert asyncio.run(main()) < 2.0
        report = pool.report()
    assert report.status == "stopped" and report.pending == [30, 30, 30]


def test_leaving_an_imap_async_early_cancels_the_rest():
    with nbpar.WorkerPool(2) as pool:
        async def main():
            iterator = pool.imap_async(slow_square, range(1000), chunk_size=1)
            async for value in iterator:
                if value:
                    break
            await iterator.aclose()

        asyncio.run(main())
        assert pool.report().done < 1000


def logged_fail_on_seven(paths, x):
    """Logs each run; fails at 7 until the marker file exists."""
    log, marker = paths
    with open(log, "a") as f:
        f.write(f"{x}\n")
    if x == 7 and not os.path.exists(marker):
        raise RuntimeError("not yet")
    return x * x


def test_map_async_with_a_checkpoint_resumes_after_an_error(tmp_path):
    log, marker, ck = str(tmp_path / "log"), str(tmp_path / "marker"), tmp_path / "run.nbpar"

    def runs():
        with open(log) as f:
            return [int(line) for line in f]

    with nbpar.WorkerPool(2, shared_objects=(log, marker)) as pool:
        with pytest.raises(RuntimeError, match="not yet"):
            asyncio.run(pool.map_async(logged_fail_on_seven, range(40), checkpoint=ck,
                                       chunk_size=1))
        first = runs()
        stored = pool.report().done
        assert stored >= 1
        open(marker, "w").close()
        out = asyncio.run(pool.map_async(logged_fail_on_seven, range(40), checkpoint=ck))
    assert out == [x * x for x in range(40)]
    again = runs()[len(first):]
    assert len(again) == 40 - stored  # what the checkpoint held did not run again
    assert sorted(set(first) | set(again)) == list(range(40))
