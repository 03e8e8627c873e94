"""Ledgers and Report snapshots: a Report stays true to its moment while the map goes on."""

from __future__ import annotations

import dataclasses

import pytest

from nbpar.reports import Ledger, Report, TaskError, WorkerInfo


def snap(ledger, status="running", **fields):
    """A Report over a ledger, the way BossState.report builds one."""
    return Report(status, ledger.total, ledger.done, fields.pop("failed", 0), 0.0,
                  _view=ledger.view(()), **fields)


ITEMS = list("abcdef")

# each step: (indices recorded, results) -> results / pending indices seen right after it
STEPS = [
    (range(0, 2), ["A", "B"], {0: "A", 1: "B"}, [2, 3, 4, 5]),
    ((4,), ["E"], {0: "A", 1: "B", 4: "E"}, [2, 3, 5]),
    ((5, 3), ["F", "D"], {0: "A", 1: "B", 3: "D", 4: "E", 5: "F"}, [2]),   # out of order
    (range(2, 3), ["C"], {i: x.upper() for i, x in enumerate(ITEMS)}, []),
]


def test_snapshots_stay_true_while_more_results_arrive():
    ledger = Ledger(len(ITEMS), ITEMS, None, True)
    before = snap(ledger)
    taken = []
    for indices, results, _, _ in STEPS:
        ledger.record(indices, results)
        taken.append(snap(ledger))
    assert (before.done, before.results, before.pending) == (0, {}, ITEMS)
    for report, (_, _, results, pending) in zip(taken, STEPS):
        assert report.results == results
        assert report.pending_indices == pending
        assert report.pending == [ITEMS[i] for i in pending]
        assert report.done == len(results)


@pytest.mark.parametrize("upto", range(len(STEPS) + 1))
def test_ledger_results_after_each_step(upto):
    ledger = Ledger(len(ITEMS), ITEMS, None, True)
    for indices, results, _, _ in STEPS[:upto]:
        ledger.record(indices, results)
    expected = STEPS[upto - 1][2] if upto else {}
    assert ledger.done == len(expected)
    assert snap(ledger).results == expected
    assert [x for x in ledger.ordered_results() if isinstance(x, str)] == [
        expected[i] for i in sorted(expected)]


def test_ordered_and_completion_order():
    ledger = Ledger(len(ITEMS), ITEMS, None, True)
    for indices, results, _, _ in STEPS:
        ledger.record(indices, results)
    assert ledger.ordered_results() == list("ABCDEF")
    assert ledger.completion_order() == list("ABEFDC")


def test_results_read_from_a_report_are_a_copy():
    ledger = Ledger(3, list("abc"), None, True)
    ledger.record(range(0, 1), ["A"])
    report = snap(ledger)
    report.results[1] = "tampered"
    assert report.results == {0: "A"}


def test_report_is_frozen():
    report = snap(Ledger(1, ["a"], None, True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.done = 5


def test_report_without_a_ledger():
    report = Report("idle", 0, 0, 0, 0.0)
    assert (report.results, report.pending, report.pending_indices, report.rest) == (
        {}, [], [], None)


# ----------------------------------------------------------------------------- continuing

def test_continuation_ledger_starts_from_prior_results():
    prior = {0: "A", 2: "C"}
    ledger = Ledger(4, {1: "b", 3: "d"}, prior, True)
    first = snap(ledger)
    assert (first.done, first.results) == (2, prior)
    assert (first.pending_indices, first.pending) == ([1, 3], ["b", "d"])
    ledger.record((1,), ["B"])
    second = snap(ledger)
    assert second.results == {0: "A", 1: "B", 2: "C"}
    assert (second.pending_indices, second.pending) == ([3], ["d"])
    assert (first.pending, first.done) == (["b", "d"], 2)        # the snapshot did not move
    ledger.record((3,), ["D"])
    assert ledger.ordered_results() == ["A", "B", "C", "D"]


def test_stopped_report_continues_into_the_full_result_list():
    """What pool.map(func, report=stopped) does with a stopped map's report."""
    items = list("abcde")
    ledger = Ledger(5, items, None, True)
    ledger.record(range(0, 2), ["A", "B"])
    ledger.record((4,), ["E"])
    stopped = snap(ledger, status="stopped")
    pairs = list(zip(stopped.pending_indices, stopped.pending))
    assert pairs == [(2, "c"), (3, "d")]
    again = Ledger(stopped.total, dict(pairs), stopped.results, True)
    again.record(range(2, 4), ["C", "D"])
    assert again.ordered_results() == list("ABCDE")
    assert snap(again).pending == []
    assert stopped.results == {0: "A", 1: "B", 4: "E"}


def test_empty_prior_is_a_fresh_ledger():
    ledger = Ledger(2, {0: "a", 1: "b"}, {}, True)
    assert (ledger.done, ledger.log) == (0, [])
    assert snap(ledger).pending == ["a", "b"]


# ----------------------------------------------------------------------------- lazy maps

def test_lazy_ledger_pending_holds_the_items_read_but_not_finished():
    ledger = Ledger(None, None, None, keep_results=False)
    for pair in [(0, "a"), (1, "b"), (2, "c")]:
        ledger.note_read([pair[0]], [pair[1]])
    ledger.record((1,), ["B"])
    first = snap(ledger)
    assert (first.pending_indices, first.pending) == ([0, 2], ["a", "c"])
    assert first.results == {}                       # results went to the consumer
    assert first.done == 1
    ledger.note_read([3], ["d"])
    ledger.record((0, 2), ["A", "C"])
    assert snap(ledger).pending == ["d"]
    assert first.pending == ["a", "c"]               # the snapshot kept its own copy


def test_lazy_ledger_can_keep_results():
    ledger = Ledger(None, None, None, True)
    ledger.note_read([0], ["a"])
    ledger.record((0,), ["A"])
    assert snap(ledger).results == {0: "A"}
    assert ledger.ordered_results() == ["A"]


def test_rest_is_the_unread_part_of_a_lazy_input():
    source = iter([(5, "f")])
    ledger = Ledger(None, None, None, False)
    ledger.rest = source
    assert snap(ledger).rest is source
    assert snap(Ledger(1, ["a"], None, True)).rest is None


# ----------------------------------------------------------------------------- text

def test_report_str_lists_workers_and_errors():
    ledger = Ledger(4, list("abcd"), None, True)
    ledger.record(range(0, 2), ["A", "B"])
    report = snap(ledger, status="failed", failed=1,
                  workers=(WorkerInfo(0, 123, "idle", 2, 0.5),),
                  errors=(TaskError("c", 2, "ValueError", "bad c", "tb", 0),))
    text = str(report)
    assert text.splitlines() == [
        "status failed: 2/4 done, 1 failed, 0.00 s",
        "  worker 0 pid 123 idle: 2 tasks, 0.50 s busy",
        "  error at index 2: ValueError: bad c",
    ]


def test_report_str_with_unknown_total():
    assert str(Report("running", None, 3, 0, 1.5)) == "status running: 3/? done, 0 failed, 1.50 s"
