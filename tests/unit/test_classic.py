"""The classic API's pure parts: declaring Workers, matching instruction sets to them, and
combining common and individual instructions -- no pool involved."""

import pytest

import nbpar
from nbpar import classic


class UnitAlpha(nbpar.Worker):
    instructions = ("unit_a",)
    defaults = {"unit_opt": 1}

    def task(self, unit_a, unit_opt):
        return unit_a, unit_opt


class UnitAlphaBeta(nbpar.Worker):
    instructions = ("unit_a", "unit_b")

    def task(self, unit_a, unit_b):
        return unit_a + unit_b


class UnitBase(nbpar.Worker):
    """Declares nothing: a base for others, never a candidate itself."""


class UnitDerived(UnitAlphaBeta):
    """Same instructions as its parent: the more derived class is picked."""


def test_a_set_goes_to_the_class_that_takes_exactly_its_names():
    assert classic.find_worker({"unit_a": 1}) is UnitAlpha
    assert classic.find_worker({"unit_a": 1, "unit_opt": 2}) is UnitAlpha
    assert classic.find_worker({"unit_a": 1, "name": "w"}) is UnitAlpha  # name: every worker's


def test_between_a_class_and_its_subclass_the_subclass_is_picked():
    assert classic.find_worker({"unit_a": 1, "unit_b": 2}) is UnitDerived


def test_a_set_that_matches_no_worker_gets_an_error_naming_its_instructions():
    with pytest.raises(ValueError) as info:
        classic.find_worker({"unit_a": 1, "unit_zzz": 2})
    message = str(info.value)
    assert "['unit_a', 'unit_zzz']" in message and "no nbpar.Worker" in message
    assert "UnitAlpha(unit_a, [unit_opt])" in message  # and what is known


def test_a_missing_required_instruction_matches_nothing():
    with pytest.raises(ValueError, match="unit_opt"):
        classic.find_worker({"unit_opt": 1})


def test_two_unrelated_classes_taking_the_same_names_are_ambiguous():
    class AmbiguousOne(nbpar.Worker):
        instructions = ("ambiguous_x",)

    class AmbiguousTwo(nbpar.Worker):
        instructions = ("ambiguous_x",)

    with pytest.raises(ValueError, match="several .*AmbiguousOne.*AmbiguousTwo"):
        classic.find_worker({"ambiguous_x": 1})


def test_redefining_a_class_replaces_it():  # re-running a notebook cell
    def define():
        class Redefined(nbpar.Worker):
            instructions = ("redefined_x",)
        return Redefined

    define()
    second = define()
    assert classic.find_worker({"redefined_x": 0}) is second


@pytest.mark.parametrize("body, problem", [
    (dict(instructions="abc"), "tuple of names"),
    (dict(instructions=("a", 3)), "tuple of names"),
    (dict(instructions=("bad_a",), defaults=["x"]), "must be a dict"),
    (dict(instructions=("bad_b",), defaults={"bad_b": 1}), "declared twice"),
    (dict(instructions=("name",)), "reserved"),
])
def test_bad_declarations_are_refused_at_class_creation(body, problem):
    with pytest.raises(TypeError, match=problem):
        type("Bad", (nbpar.Worker,), body)


def test_combine_merges_common_into_each_position():
    sets = classic.combine({"c": 0}, {"a": [1, 2], "b": ("x", "y")})
    assert sets == [{"c": 0, "a": 1, "b": "x"}, {"c": 0, "a": 2, "b": "y"}]
    assert classic.combine({"c": 0}, {}) == []


def test_individual_instructions_of_unequal_length_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"one length, got a: 2, b: 3"):
        classic.combine({}, {"a": [1, 2], "b": [1, 2, 3]})


@pytest.mark.parametrize("common, individual", [([], {}), ({}, []), ({}, {"a": 5}),
                                                ({}, {"a": "text"})])
def test_instructions_of_the_wrong_shape_are_refused(common, individual):
    with pytest.raises(TypeError):
        classic.combine(common, individual)


def test_a_worker_without_task_says_so():
    with pytest.raises(NotImplementedError, match="UnitBase"):
        UnitBase().task()


# (sets, handed to the pool, done, stopped, failed, the pool halted) -> the Boss's status
STATUS_TABLE = [
    ((0, False, 0, 0, 0, False), "idle"),
    ((0, True, 0, 0, 0, True), "idle"),
    ((3, False, 0, 0, 0, False), "halted"),     # given, before make_them_work
    ((3, True, 0, 0, 0, False), "running"),
    ((3, True, 1, 0, 0, True), "halted"),       # the pool says so, whoever halted it
    ((3, True, 3, 0, 0, True), "finished"),     # nothing left to halt
    ((3, True, 1, 1, 0, False), "stopped"),     # the pool stopped a set: at once, not at the end
    ((3, True, 1, 1, 0, True), "stopped"),
    ((3, True, 1, 1, 1, False), "failed"),      # a failure stops the rest: it is what counts
    ((3, True, 2, 0, 1, False), "failed"),
]


@pytest.mark.parametrize("given, status", STATUS_TABLE)
def test_the_status_is_derived_from_the_sets_outcomes_and_the_pools_report(given, status):
    assert classic.status_of(*given) == status
