"""The Boss's story from a real pool: `pool.debug_log()` and the "nbpar.boss" logger."""

import logging

import pytest

import nbpar
import tasks
from waiting import Background, wait_for


@pytest.mark.parametrize("method", ["forkserver", "threading"])
def test_debug_log_tells_a_map_from_its_submission_to_its_end(method):
    with nbpar.WorkerPool(2, start_method=method, keep_alive=True) as pool:
        assert pool.map(tasks.square, range(10), chunk_size=1) == [x * x for x in range(10)]
        job_id = pool.report().job_id
        story = pool.debug_log()
    ids = [entry.stimulus_id for entry in story]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    events = [entry.event for entry in story]
    told = [text for entry in story for text in entry.instructions]
    assert f"JobSubmitted(job_id={job_id})" in events
    assert sum(e.startswith("BatchDone(") for e in events) == 10  # one item a batch
    assert sum(t.startswith("Dispatch(") and t.endswith(f"job_id={job_id})") for t in told) == 10
    assert any(t.startswith(f"FinishJob(job_id={job_id}") for t in told)
    assert all(isinstance(entry.time, float) for entry in story)


def test_a_halted_map_says_why_nothing_runs():
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        job = Background(lambda: pool.map(tasks.nap, range(40)))
        wait_for(lambda: pool.report().done >= 2)
        pool.halt()
        wait_for(lambda: pool.report().status == "halted")
        halted = [e for e in pool.debug_log() if e.event.startswith("SignalReceived(")]
        assert halted[-1].event == "SignalReceived(signal=Signal.HALT, for_job=None)"
        pool.resume()
        job.join()
    assert job.error is None


def test_the_boss_logs_its_steps_at_debug_only(caplog):
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        with caplog.at_level(logging.INFO, logger="nbpar.boss"):
            pool.map(tasks.square, range(5), chunk_size=1)
        assert not [r for r in caplog.records if r.name == "nbpar.boss"]
        with caplog.at_level(logging.DEBUG, logger="nbpar.boss"):
            pool.map(tasks.square, range(5), chunk_size=1)
            job_id = pool.report().job_id
    lines = [r.getMessage() for r in caplog.records if r.name == "nbpar.boss"]
    assert any(f"JobSubmitted(job_id={job_id})" in line for line in lines)
    assert sum("BatchDone(" in line for line in lines) >= 5


def test_an_output_sink_that_raises_is_logged_and_the_map_goes_on(caplog):
    def broken(worker_id, stream, text):
        raise RuntimeError("sink down")

    with caplog.at_level(logging.DEBUG, logger="nbpar.boss"):
        with nbpar.WorkerPool(1, start_method="fork", on_output=broken) as pool:
            results = pool.map(tasks.talk, range(3))
    assert results == [0, 1, 2]
    failures = [r for r in caplog.records
                if r.name == "nbpar.boss" and r.getMessage().startswith("the output sink")]
    assert failures and failures[0].exc_info[0] is RuntimeError


def test_a_large_batch_queued_behind_another_is_held_until_its_worker_is_free():
    """Tiny tasks on large items: each batch queued behind a running one is larger than the
    machine lets go ahead, so the Boss holds it and says so (DispatchHeld); the machine
    sends each (SendHeld) as the batch before it is done, and the map completes."""
    items = [bytes(100_000)] * 200
    with nbpar.WorkerPool(1, start_method="forkserver") as pool:
        assert pool.map(len, items) == [100_000] * 200
        story = pool.debug_log()
    held = [e for e in story if e.event.startswith("DispatchHeld(")]
    sent = [t for e in story for t in e.instructions if t.startswith("SendHeld(")]
    assert held, "no batch was held back"
    assert len(sent) == len(held)
