"""How a function is pickled against its pool's bundle (bundle.py), without processes: the
bytes sent to running workers and the modules the fork server is asked to import."""

import io
import json
import pickle
from functools import partial

from nbpar.bundle import Bundle, Opened, _RefUnpickler


def test_a_function_sent_to_running_workers_still_names_its_modules_when_asked_later():
    """Sending to running workers notes no modules (a Python call per pickled object); asking
    for them afterwards, as a new worker's start does, still finds them, and the bytes sent
    are the same either way."""
    bundle = Bundle((None, None, None), {})
    func = partial(json.dumps, indent=2)
    body = bundle.encode_func(func)
    assert pickle.loads(body)({"a": 1}) == json.dumps({"a": 1}, indent=2)
    assert "json" in bundle.modules(func)
    assert bundle.encode_func(func) == body


def test_a_function_naming_a_bundle_object_is_sent_as_a_reference_to_it():
    shared = {"big": list(range(1000))}
    bundle = Bundle.inherited((shared, None, None))
    func = partial(len, shared)
    body = bundle.encode_func(func)
    assert b"big" not in body  # the object itself does not travel
    opened = Opened((shared, None, None), {id(shared): shared})
    assert _RefUnpickler(io.BytesIO(body), opened.memo).load()() == 1
    assert "builtins" in bundle.modules(func)


def test_a_function_holding_the_name_main_as_data_is_not_sent_by_value(monkeypatch):
    """A joblib batch holds the warning filters, which name "__main__": plain pickle takes
    it, with or without references into the bundle."""
    from nbpar import tracebacks

    def no_cloudpickle():
        raise AssertionError("sent by value")
    monkeypatch.setattr(tracebacks, "pickler_class", no_cloudpickle)
    monkeypatch.setattr("nbpar.bundle._PICKLERS", {})
    shared = {"big": list(range(10))}
    for objects in ((None, None, None), (shared, None, None)):
        bundle = Bundle.inherited(objects)
        func = partial(json.dumps, {"module": "__main__"}, default=shared)
        assert b"__main__" in bundle.encode_func(func)  # the data travels, by plain pickle
        assert "__main__" not in bundle.modules(func)


def test_a_function_of_main_is_sent_by_value_after_main_appeared_as_data():
    import sys
    main = sys.modules["__main__"]

    def probe(label):
        return label + "!"
    probe.__module__, probe.__qualname__ = "__main__", "_nbpar_probe_fn"
    main._nbpar_probe_fn = probe
    try:
        func = partial(probe, probe.__module__)  # "__main__" first as data, then as a module
        body = Bundle((None, None, None), {}).encode_func(func)
    finally:
        del main._nbpar_probe_fn
    assert pickle.loads(body)() == "__main__!"
