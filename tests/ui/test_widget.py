"""PoolWidget headless: ipywidgets without a frontend, buttons driven with click().

Tasks wait on an Event the test holds (threads) or sleep (processes), so each state -- running,
halted, stopped, finished, failed -- is reached on purpose, not by timing luck.
"""

import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import nbpar
import waiting
from nbpar.ui import kernel
from nbpar.ui.widget import PoolWidget

pytestmark = pytest.mark.timeout(60)
wait_for = functools.partial(waiting.wait_for, timeout=10.0)


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def pool():
    with nbpar.WorkerPool(2, start_method="threading") as p:
        yield p


def start_map(pool, func, items, **options):
    runner = ThreadPoolExecutor(1)
    future = runner.submit(pool.map, func, items, chunk_size=1, **options)
    runner.shutdown(wait=False)
    return future


def button_states(view):
    return {label: not b.disabled for label, b in view.buttons.items()}


def test_buttons_halt_resume_stop(pool, gate):
    view = PoolWidget(pool)
    running = start_map(pool, lambda x: gate.wait(30) and x, range(10))
    wait_for(lambda: view.refresh() and view.last_report.status == "running")
    assert button_states(view) == {"HALT": True, "RESUME": False, "STOP": True,
                                   "STOP NOW": True}

    view.buttons["HALT"].click()
    wait_for(lambda: pool.report().status == "halted")
    view.refresh()
    assert button_states(view) == {"HALT": False, "RESUME": True, "STOP": True,
                                   "STOP NOW": True}
    assert "halted" in view.header.value and "HALT pressed" in view.message.value

    view.buttons["RESUME"].click()
    wait_for(lambda: pool.report().status == "running")
    view.buttons["STOP"].click()
    gate.set()
    with pytest.raises(nbpar.StoppedError):
        running.result(30)
    view.close()
    assert view.last_report.status == "stopped"
    assert view.bar.bar_style == "warning"
    assert "#e65100" in view.header.value  # the final state, in colour
    assert not any(button_states(view).values())


def test_stop_now_counts_running_items_as_pending():
    with nbpar.WorkerPool(2) as pool:  # processes: STOP NOW kills them
        view = PoolWidget(pool)
        running = start_map(pool, time.sleep, [30, 30, 30])
        wait_for(lambda: sum(w.state == "busy" for w in pool.report().workers) == 2)
        view.buttons["STOP NOW"].click()
        with pytest.raises(nbpar.StoppedError) as info:
            running.result(10)
        view.close()
    assert info.value.report.pending == [30, 30, 30]
    assert "3 pending" in view.progress.value


def test_finished_map_shows_counts_rate_and_green(pool):
    view = PoolWidget(pool)
    assert pool.map(abs, range(-50, 50)) == [abs(x) for x in range(-50, 50)]
    view.close()
    assert view.bar.value == view.bar.max == 100
    assert view.bar.bar_style == "success"
    assert "<b>100</b> / 100" in view.progress.value and "items/s" in view.progress.value
    assert "finished" in view.header.value and "builtins.abs" in view.header.value
    assert view.table.value.count("<tr>") == 3  # a header and one row per worker


def test_running_map_shows_rate_eta_and_workers(pool, gate):
    view = PoolWidget(pool)
    release = threading.Semaphore(0)
    running = start_map(pool, lambda x: release.acquire(timeout=30) and x, range(20))
    for _ in range(4):
        release.release()
    wait_for(lambda: view.refresh() and view.last_report.done >= 4)
    for _ in range(4):
        release.release()
    wait_for(lambda: view.refresh() and "ETA" in view.progress.value)
    assert "items/s" in view.progress.value
    assert "busy" in view.table.value
    for _ in range(20):
        release.release()
    running.result(30)
    view.close()


def test_errors_show_remote_tracebacks_in_red(pool):
    def fail(x):
        if x == 3:
            raise ValueError("three is bad")
        return x

    view = PoolWidget(pool)
    with pytest.raises(ValueError):
        pool.map(fail, range(5))
    view.close()
    assert view.bar.bar_style == "danger"
    assert view.errors.layout.display is None
    assert "ValueError: three is bad" in view.errors.value
    assert "index 3" in view.errors.value and "Traceback" in view.errors.value


def test_worker_output_goes_to_the_pane_tagged_then_the_sink_is_given_back():
    with nbpar.WorkerPool(2) as pool:
        before = pool.on_output
        view = PoolWidget.for_map(pool, show=False)
        assert pool.on_output == view.write
        pool.map(print, ["one", "two", "three"], chunk_size=1)
        view.close()
        assert pool.on_output == before
    lines = view.lines
    assert sorted(line.split("] ")[1] for line in lines) == ["one\n", "three\n", "two\n"]
    assert all(line.startswith("[worker ") for line in lines)
    text = "".join(o["text"] for o in view.output.outputs)
    assert "] two\n" in text and view.output.layout.display == "flex"


def test_the_pane_keeps_the_last_lines():
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        view = PoolWidget(pool, max_lines=3)
        for n in range(5):
            view.write(0, "stderr" if n == 4 else "stdout", f"line {n}")
        view.close()
    outputs = view.output.outputs
    assert outputs == (
        {"output_type": "stream", "name": "stdout", "text": "... 2 earlier lines not shown\n"
         "[worker 0] line 2\n[worker 0] line 3\n"},
        {"output_type": "stream", "name": "stderr", "text": "[worker 0] line 4\n"})


def test_a_click_on_a_view_of_an_ended_map_is_not_applied(pool):
    """The page sends a click made while it showed the map running; it reaches the kernel
    once the view shows the map ended: it must not hold the pool (nor the next map)."""
    view = PoolWidget(pool)
    pool.map(abs, range(4))
    view.refresh()
    assert view.buttons["HALT"].disabled and view.buttons["STOP"].disabled
    view.buttons["HALT"].click()
    view.buttons["STOP"].click()
    view.refresh()
    assert "STOP not applied: the map it was pressed for has ended" in view.message.value
    assert not pool.report().pool_halted
    assert pool.map(abs, [-1]) == [1]
    view.close()


def test_a_failing_button_is_shown_not_raised(pool):
    view = PoolWidget(pool)

    def broken(signal):
        raise OSError("pipe closed")

    pool.send = broken
    view.buttons["HALT"].click()
    view.refresh()
    assert "HALT failed: OSError: pipe closed" in view.message.value
    view.close()


def test_refresh_rate_is_bounded(pool, gate):
    looks = []
    real = pool.report

    def counted():
        looks.append(time.monotonic())
        return real()

    pool.report = counted
    view = PoolWidget(pool, interval=0.1)
    running = start_map(pool, lambda x: gate.wait(30) and x, range(4))
    wait_for(lambda: len(looks) >= 6)
    gate.set()
    running.result(30)
    view.close()
    span = looks[-1] - looks[0]
    assert len(looks) <= span / 0.1 + 3  # about 10 Hz, never a busy loop


def test_view_follows_the_pool_until_it_closes():
    pool = nbpar.WorkerPool(1, start_method="threading")
    view = PoolWidget(pool)
    pool.close()
    pool.join()
    view._thread.join(5)
    assert not view._thread.is_alive()
    view.close()


def test_pool_rich_display(pool, monkeypatch):
    assert pool._repr_mimebundle_() == {"text/plain": repr(pool)}
    monkeypatch.setattr(kernel, "in_notebook", lambda: True)
    bundle = pool._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_nbpar_poolwidget_is_the_widget():
    assert nbpar.PoolWidget is PoolWidget


def test_a_pool_that_never_ran_has_no_worker_rows(pool):
    view = PoolWidget(pool)
    view.close()
    assert len(pool.report().workers) == 2 and view.table.value == ""


def test_the_table_shows_retired_workers_and_process_figures():
    with nbpar.WorkerPool(2, max_tasks_per_worker=1) as pool:
        view = PoolWidget(pool)
        pool.map(abs, range(4), chunk_size=1)
        wait_for(lambda: all(w.state == "retired" for w in pool.report().workers))
        view.close()
    table = view.table.value
    assert table.count(">retired</span>") == 2 and ">dead<" not in table
    assert "<th style='padding:1px 8px;text-align:left'>cpu</th>" in table
    assert "memory (RSS / USS)" in table


def test_thread_workers_show_no_process_columns(pool):
    view = PoolWidget(pool)
    pool.map(abs, range(4))
    view.close()
    assert "tasks done" in view.table.value and "cpu" not in view.table.value


def test_the_summary_of_a_stopped_map(pool, gate):
    view = PoolWidget(pool)
    running = start_map(pool, lambda x: gate.wait(30) and x, range(6))
    wait_for(lambda: pool.report().status == "running")
    view.buttons["STOP"].click()
    view.refresh()
    assert "STOP pressed" in view.message.value  # the button's label, not the signal's name
    gate.set()
    with pytest.raises(nbpar.StoppedError):
        running.result(30)
    view.close()
    bundle = view.summary()
    assert "stopped:" in bundle["text/plain"] and "pending" in bundle["text/plain"]
    assert "<b style='color:#e65100'>stopped</b>" in bundle["text/html"]


def test_a_subscriber_hears_the_buttons(pool, gate):
    seen = []
    unsubscribe = pool.subscribe(seen.append, reports=False)
    view = PoolWidget(pool)
    running = start_map(pool, lambda x: gate.wait(30) and x, range(10))
    wait_for(lambda: view.refresh() and view.last_report.status == "running")
    job_id = view.last_report.job_id
    view.buttons["HALT"].click()
    view.buttons["RESUME"].click()
    view.buttons["STOP"].click()
    gate.set()
    with pytest.raises(nbpar.StoppedError):
        running.result(30)
    view.close()
    unsubscribe()
    assert [(told.signal, told.for_map) for told in seen] == [
        (nbpar.Signal.HALT, job_id), (nbpar.Signal.RESUME, job_id),
        (nbpar.Signal.STOP, job_id)]
