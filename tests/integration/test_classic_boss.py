"""The classic Boss on real pools: matching Workers, reports, errors and signals."""

import time

import psutil
import pytest

import classic_workers as cw
import nbpar
from waiting import wait_for


@pytest.mark.parametrize("method", ["forkserver", "threading"])
def test_instruction_sets_run_on_their_worker_classes_and_are_reported(method):
    boss = nbpar.Boss(n_jobs=2, start_method=method)
    boss.set_instructions(dict(nap=0.01), dict(number=[1, 2, 3], name=["a", "b", "c"]))
    boss.set_instructions(dict(greeting="hello"), dict(who=["ann", "bob"]))
    before = boss.get_report()
    assert (before.status, before.total, before.done, len(before.pending)) == ("halted", 5, 0, 5)
    assert boss.get_report(interim=False) is None
    boss.make_them_work()
    boss.wait_till_finished()
    report = boss.get_report(interim=False)
    assert (report.status, report.total, report.done, report.failed) == ("finished", 5, 5, 0)
    assert report.pending == () and report.errors == ()
    by_name = {r["name"]: r for r in report.workers_report}
    assert {n: by_name[n]["report"] for n in "abc"} == {"a": 2, "b": 4, "c": 6}
    assert by_name["a"]["instructions"] == {"number": 1, "nap": 0.01, "stamps": None}
    greetings = sorted(r["report"] for r in report.workers_report if r["name"].startswith("Gr"))
    assert greetings[0].startswith("hello, ann (from Greeter-3")
    assert len(report.workers) == 2


def test_instructions_given_while_working_run_too():
    with nbpar.Boss(n_jobs=2, start_method="threading") as boss:
        boss.set_instructions({}, dict(number=[1, 2]))
        boss.make_them_work()
        boss.set_instructions({}, dict(number=[3]))
    report = boss.get_report()
    assert sorted(r["report"] for r in report.workers_report) == [2, 4, 6]
    with pytest.raises(RuntimeError, match="no more instructions"):
        boss.set_instructions({}, dict(number=[4]))


def test_bad_instructions_are_refused_before_anything_runs():
    boss = nbpar.Boss(n_jobs=1, start_method="threading")
    with pytest.raises(ValueError, match="one length"):
        boss.set_instructions({}, dict(number=[1, 2], nap=[0.1]))
    with pytest.raises(ValueError, match=r"\['colour', 'number'\]"):
        boss.set_instructions(dict(colour="red"), dict(number=[1]))
    assert boss.get_report().status == "idle"
    boss.wait_till_finished()  # nothing to do: it closes


def test_an_error_in_one_task_stops_the_others_and_is_raised():
    boss = nbpar.Boss(n_jobs=2, start_method="forkserver")
    boss.set_instructions(dict(fail_at=1, nap=0.05), dict(position=list(range(40))))
    boss.make_them_work()
    with pytest.raises(KeyError, match="position 1 is bad") as info:
        boss.wait_till_finished()
    assert "Traceback" in str(info.value.__cause__)  # the worker's traceback
    report = boss.get_report()
    assert report.status == "failed" and report.failed == 1
    assert report.errors[0].item["position"] == 1 and report.errors[0].type == "KeyError"
    assert report.done < 39 and len(report.pending) == 40 - report.done - 1


def test_halt_holds_the_work_until_resume(tmp_path):
    stamps = str(tmp_path / "stamps")
    boss = nbpar.Boss(n_jobs=2, start_method="threading")
    boss.set_instructions(dict(nap=0.05, stamps=stamps), dict(number=list(range(30))))
    boss.make_them_work()
    wait_for(lambda: boss.get_report().done >= 4, what="some work done")
    boss.send(nbpar.Signal.HALT)
    assert boss.send(nbpar.Signal.SEND_REPORT).status == "halted"
    wait_for(lambda: all(w.state != "busy" for w in boss.get_report().workers), what="idle")
    halted_at, done = time.time(), boss.get_report().done
    time.sleep(0.3)  # a window in which nothing may start
    assert [s for s in cw.read_stamps(stamps) if s[1] > halted_at] == []
    assert boss.get_report().done == done < 30
    boss.send(nbpar.Signal.RESUME)
    boss.wait_till_finished()
    assert boss.get_report().status == "finished"
    assert sorted(r["report"] for r in boss.get_report().workers_report) == [
        2 * n for n in range(30)]


def test_stop_lets_running_tasks_finish_and_keeps_the_rest_pending():
    boss = nbpar.Boss(n_jobs=2, start_method="threading")
    boss.set_instructions(dict(nap=0.05), dict(number=list(range(40))))
    boss.make_them_work()
    wait_for(lambda: boss.get_report().done >= 2, what="some work done")
    boss.send(nbpar.Signal.STOP)
    boss.wait_till_finished()  # a stop is not an error
    report = boss.get_report()
    assert report.status == "stopped" and report.failed == 0
    assert report.done + len(report.pending) == 40 and report.pending
    with pytest.raises(RuntimeError, match="no more instructions"):
        boss.set_instructions({}, dict(number=[1]))


def test_the_status_agrees_with_the_pools_report_whoever_sent_the_signal():
    """HALT, RESUME and STOP sent to the pool itself (as a PoolWidget's buttons do) show in
    the Boss's status as in the pool's report; a Boss keeping a status of its own would
    still say "running"."""
    boss = nbpar.Boss(n_jobs=2, start_method="threading")
    boss.set_instructions(dict(nap=0.05), dict(number=list(range(40))))
    boss.make_them_work()
    wait_for(lambda: boss.get_report().done >= 2, what="some work done")
    boss.pool.halt()
    assert boss.pool.report().pool_halted and boss.get_report().status == "halted"
    boss.pool.resume()
    assert not boss.pool.report().pool_halted and boss.get_report().status == "running"
    boss.send(nbpar.Signal.HALT)  # and the Boss's own signals reach the pool's report
    assert boss.pool.report().pool_halted and boss.get_report().status == "halted"
    boss.pool.resume()
    assert boss.get_report().status == "running"
    boss.pool.stop()  # the pool stops the sets not started at once
    wait_for(lambda: boss.get_report().status == "stopped", what="the sets stopped")
    boss.wait_till_finished()
    report = boss.get_report()
    assert report.status == "stopped" and report.failed == 0
    assert report.done + len(report.pending) == 40 and report.pending


def test_stop_rightnow_kills_running_tasks():
    boss = nbpar.Boss(n_jobs=2, start_method="forkserver")
    boss.set_instructions({}, dict(sleep_for=[60, 60, 60]))
    boss.make_them_work()
    wait_for(lambda: sum(w.state == "busy" for w in boss.get_report().workers) == 2,
             what="two tasks running")
    start = time.monotonic()
    boss.stop_them_working()
    boss.wait_till_finished()
    assert time.monotonic() - start < 10
    report = boss.get_report()
    assert report.status == "stopped" and report.done == 0 and len(report.pending) == 3


def test_wait_till_finished_before_make_them_work_is_an_error_not_a_hang():
    boss = nbpar.Boss(n_jobs=1, start_method="threading")
    boss.set_instructions({}, dict(number=[1]))
    with pytest.raises(RuntimeError, match="make_them_work"):
        boss.wait_till_finished()
    boss.make_them_work(terminate=True)
    boss.wait_till_finished()
    assert boss.get_report().workers_report[0]["report"] == 2


def test_halting_a_classic_boss_suspends_the_jobs_its_workers_run(tmp_path):
    """Signals reach run_job through the classic Boss too (threading: one steering)."""
    boss = nbpar.Boss(n_jobs=1, start_method="threading")
    tag = f"classic-{time.monotonic_ns()}"
    boss.set_instructions({}, dict(command=[f": {tag}; sleep 1; echo done"]))
    boss.make_them_work()

    def job_procs():
        return [p for p in psutil.Process().children(recursive=True)
                if tag in " ".join(_cmdline_and_script(p))]

    procs = wait_for(job_procs, what="the job running")
    boss.send(nbpar.Signal.HALT)
    wait_for(lambda: all(p.status() == psutil.STATUS_STOPPED for p in procs), what="suspended")
    boss.send(nbpar.Signal.RESUME)
    boss.wait_till_finished()
    assert boss.get_report().workers_report[0]["report"] == "done\n"


def _cmdline_and_script(proc):
    try:
        cmd = proc.cmdline()
        if cmd[:1] == ["/bin/sh"] and len(cmd) > 1:
            with open(cmd[1]) as f:
                return cmd + [f.read()]
        return cmd
    except (psutil.Error, OSError):
        return []


def test_a_boss_used_as_a_context_manager_stops_on_error():
    with pytest.raises(ZeroDivisionError):
        with nbpar.Boss(n_jobs=1, start_method="threading") as boss:
            boss.set_instructions({}, dict(sleep_for=[30]))
            boss.make_them_work()
            wait_for(lambda: boss.get_report().workers[0].state == "busy")
            1 / 0  # noqa: B018 - raises
    report = boss.get_report()
    assert report.status == "stopped" and len(report.pending) == 1
