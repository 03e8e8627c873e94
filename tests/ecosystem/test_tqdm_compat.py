"""nbpar.process_map / thread_map against tqdm.contrib.concurrent's: one suite over both."""

from __future__ import annotations

import threading

import pytest
from tqdm.contrib import concurrent as tqdm_concurrent

import eco_tasks
import nbpar
from waiting import Background, wait_for

MAPS = {
    "tqdm": (tqdm_concurrent.process_map, tqdm_concurrent.thread_map),
    "nbpar": (nbpar.process_map, nbpar.thread_map),
}


@pytest.fixture(params=list(MAPS))
def maps(request):
    return MAPS[request.param]


def test_process_map_returns_results_in_order(maps):
    process_map, _ = maps
    assert process_map(eco_tasks.cube, range(300), max_workers=2, disable=True) == [
        i ** 3 for i in range(300)]


def test_several_iterables_zip_to_the_shortest(maps):
    process_map, thread_map = maps
    assert process_map(eco_tasks.add, [1, 2, 3], (10, 20), max_workers=2) == [11, 22]
    assert thread_map(eco_tasks.add, "ab", "cde", max_workers=2) == ["ac", "bd"]


def test_chunksize_and_tqdm_options(maps, capsys):
    process_map, _ = maps
    out = process_map(eco_tasks.cube, list(range(50)), max_workers=2, chunksize=7,
                      desc="cubes", unit="cube", leave=True)
    assert out == [i ** 3 for i in range(50)]
    err = capsys.readouterr().err
    assert "cubes" in err and "/50 " in err and "cube/s" in err  # the options reach the bar


def test_empty_input(maps):
    process_map, thread_map = maps
    assert process_map(eco_tasks.cube, [], max_workers=2) == []
    assert thread_map(eco_tasks.cube, iter(()), max_workers=2) == []


def test_a_generator_without_length(maps):
    _, thread_map = maps
    assert thread_map(eco_tasks.cube, (i for i in range(40)), max_workers=3) == [
        i ** 3 for i in range(40)]


def test_thread_map_runs_in_this_process(maps):
    _, thread_map = maps
    seen = set()

    def note(x):  # a closure over local state: threads share it
        seen.add(threading.get_ident())
        return x + 1
    assert thread_map(note, range(20), max_workers=2) == list(range(1, 21))
    assert threading.get_ident() not in seen and seen


def test_the_task_error_is_raised_with_its_type(maps):
    process_map, _ = maps
    with pytest.raises(ValueError, match="bad item 7"):
        process_map(eco_tasks.fails_at, range(20), max_workers=2, disable=True)


def test_stop_and_continue_with_the_report():
    with nbpar.WorkerPool(2) as pool:
        items = list(range(200))
        running = Background(lambda: nbpar.process_map(eco_tasks.nap_square, items, pool=pool,
                                                       disable=True))
        wait_for(lambda: pool.report().status == "running" and pool.report().done >= 10,
                 what="10 items done")
        pool.stop()
        running.join()
        err = running.error
        assert isinstance(err, nbpar.StoppedError), err
        assert f"process_map was stopped after {err.report.done} of 200 items" in str(err)
        assert 10 <= err.report.done < 200
        assert nbpar.process_map(eco_tasks.nap_square, pool=pool, report=err.report,
                                 disable=True) == [i * i for i in items]


def test_bad_arguments():
    with pytest.raises(ValueError, match="chunksize must be"):
        nbpar.process_map(eco_tasks.cube, range(3), chunksize=0)
    with pytest.raises(TypeError, match="at least one iterable"):
        nbpar.process_map(eco_tasks.cube)
    with pytest.raises(ValueError, match="runs on threads"):
        nbpar.thread_map(eco_tasks.cube, range(3), start_method="fork")
