"""How messages and bodies cross a process pipe: the binary frames of Batch and Done, and
the choice between plain pickle and cloudpickle for a body."""

from __future__ import annotations

import json
import pickle
import sys

import cloudpickle
import pytest

from nbpar import messages as m
from nbpar.errors import capture
from nbpar.worker import dumps


@pytest.mark.parametrize("msg", [
    m.Batch(7, 3, True, pickle.dumps([(1, 2), (3, 4)])),
    m.Batch(2**40, 0, False, pickle.dumps([])),
    m.Done(9, 0.125, pickle.dumps(["a", None])),
    m.Started(2**40 + 3),
])
def test_batch_done_and_started_cross_as_a_header_and_their_body(msg):
    data = m.to_wire(msg)
    assert data[:1] in (b"B", b"D", b"S") and len(data) < len(pickle.dumps(msg, protocol=5))
    back = m.from_wire(data)
    assert type(back) is type(msg)
    assert [getattr(back, f) for f in msg.__slots__ if f != "body"] == [
        getattr(msg, f) for f in msg.__slots__ if f != "body"]
    if hasattr(msg, "body"):
        assert bytes(back.body) == msg.body
        assert pickle.loads(back.body) == pickle.loads(msg.body)  # a view loads as it is


@pytest.mark.parametrize("msg", [
    m.Ready(1234), m.Retire(), m.Forget(5), m.Func(1, b"body"),
    m.Failed(3, 0.5, pickle.dumps([1]), capture(ValueError("bad"))),
    m.Batch(1, 2, False, ["not", "bytes"]),  # a body that is not bytes is pickled whole
])
def test_other_messages_are_pickled(msg):
    data = m.to_wire(msg)
    assert data[:1] == b"\x80"
    back = m.from_wire(data)
    assert type(back) is type(msg)
    assert pickle.dumps(back) == pickle.dumps(msg)


def test_a_body_of_plain_data_is_plain_pickle():
    body = [(1, "x"), {"k": 2.5}, None]
    assert dumps(body) == pickle.dumps(body, protocol=5)


def test_what_names_main_or_a_lambda_goes_by_value():
    main = sys.modules["__main__"]
    assert b"__main__" not in dumps([1, 2])
    fn = lambda x: x + 1  # noqa: E731
    assert pickle.loads(dumps([fn]))[0](1) == 2

    class Local:  # pickle cannot name it; cloudpickle sends the class itself
        pass
    assert type(pickle.loads(dumps(Local()))).__name__ == "Local"
    main.NbparProbe = type("NbparProbe", (), {"__module__": "__main__"})
    try:
        data = dumps(main.NbparProbe())
        del main.NbparProbe  # a worker's __main__ lacks it: only a class sent by value loads
        assert type(pickle.loads(data)).__name__ == "NbparProbe"
    finally:
        main.__dict__.pop("NbparProbe", None)


def test_the_name_main_as_data_is_plain_pickle(monkeypatch):
    """joblib's batches carry the warning filters, which name "__main__" as a string: that is
    data, and the body takes plain pickle, not cloudpickle."""
    import warnings

    from nbpar import tracebacks

    def by_value(obj):
        raise AssertionError("sent by value")
    monkeypatch.setattr(tracebacks, "dumps_by_value", by_value)
    body = [{"module": "__main__"}, warnings.filters, "__main__", json.dumps]
    assert dumps(body) == pickle.dumps(body, protocol=5)


@pytest.mark.parametrize("shape", ["alone", "after its module's name as data", "instance"])
def test_anything_of_main_goes_by_value_even_after_main_appeared_as_data(shape):
    """After the string "__main__" was pickled once, plain pickle refers to it again by its
    memo entry: a function of __main__ is found all the same."""
    main = sys.modules["__main__"]

    def probe():
        return 41

    class Probe:
        def __call__(self):
            return 41
    for obj, name in ((probe, "_nbpar_probe_fn"), (Probe, "_nbpar_probe_cls")):
        obj.__module__, obj.__qualname__, obj.__name__ = "__main__", name, name
        setattr(main, name, obj)
    try:
        target = Probe() if shape == "instance" else probe
        body = [target] if shape == "alone" else [probe.__module__, target]
        assert pickle.loads(pickle.dumps(body))[-1]() == 41  # plain pickle takes it, by name
        data = dumps(body)
    finally:
        del main._nbpar_probe_fn, main._nbpar_probe_cls
    assert pickle.loads(data)[-1]() == 41  # a worker's __main__ lacks them: sent by value


def test_a_module_registered_by_value_goes_by_value(tmp_path, monkeypatch):
    (tmp_path / "nbpar_byvalue_probe.py").write_text("def twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import nbpar_byvalue_probe as probe
    cloudpickle.register_pickle_by_value(probe)
    try:
        data = dumps(probe.twice)
    finally:
        cloudpickle.unregister_pickle_by_value(probe)
        del sys.modules["nbpar_byvalue_probe"]
    sys.path.remove(str(tmp_path))  # the module can no longer be imported: by value or fail
    assert pickle.loads(data)(21) == 42


def _pipe_pair():
    from multiprocessing.connection import Pipe
    a, b = Pipe(duplex=True)
    return a, b


def test_a_pipe_end_reads_every_message_that_arrived_in_one_read():
    ours, theirs = _pipe_pair()
    end = m.PipeEnd(ours.fileno())
    for k in range(3):
        theirs.send_bytes(m.to_wire(m.Done(k, 0.5, pickle.dumps([k]))))
    assert not end.has_message()  # nothing read yet
    first = m.from_wire(end.recv_bytes())
    assert first.batch_id == 0 and end.has_message()  # the other two came with it
    assert [m.from_wire(end.recv_bytes()).batch_id for _ in range(2)] == [1, 2]
    assert not end.has_message()
    ours.close(), theirs.close()


def test_recv_all_takes_every_whole_message_of_one_read_and_keeps_a_partial_one():
    import os
    ours, theirs = _pipe_pair()
    end = m.PipeEnd(ours.fileno())
    frames = [m.to_wire(m.Done(k, 0.5, pickle.dumps([k]))) for k in range(4)]
    framed = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    cut = len(framed) - 5  # the last message arrives in two parts
    os.write(theirs.fileno(), framed[:cut])
    assert [m.from_wire(d).batch_id for d in end.recv_all()] == [0, 1, 2]
    assert not end.has_message()  # the fourth is not whole yet: kept, not lost
    os.write(theirs.fileno(), framed[cut:])
    assert [m.from_wire(d).batch_id for d in end.recv_all()] == [3]
    ours.close(), theirs.close()


def test_a_pipe_end_speaks_connection_framing_both_ways_large_and_small():
    import threading
    ours, theirs = _pipe_pair()
    end = m.PipeEnd(ours.fileno())
    large = bytes(range(256)) * 4000  # ~1 MB: many reads, and more than the pipe holds
    writer = threading.Thread(target=lambda: [theirs.send_bytes(b) for b in (b"x", large, b"")])
    writer.start()
    assert [bytes(end.recv_bytes()) for _ in range(3)] == [b"x", large, b""]
    writer.join()
    reader = threading.Thread(target=lambda: got.extend(theirs.recv_bytes() for _ in range(2)))
    got: list = []
    reader.start()
    end.send_bytes(b"hello")
    end.send_bytes(large)
    reader.join()
    assert got == [b"hello", large]
    ours.close(), theirs.close()


def test_a_pipe_end_raises_eof_when_the_other_end_closes_mid_message():
    import os
    r, w = os.pipe()
    end = m.PipeEnd(r)
    os.write(w, b"\x00\x00\x00\x10abc")  # 16 bytes announced, 3 sent
    os.close(w)
    with pytest.raises(EOFError):
        end.recv_bytes()
    os.close(r)


def test_messages_sent_together_arrive_as_they_were_sent_one_by_one():
    import threading
    ours, theirs = _pipe_pair()
    end = m.PipeEnd(ours.fileno())
    large = b"L" * 100_000  # written on its own, between joined small ones
    sent = [b"a", b"", large, b"bb", m.to_wire(m.Batch(3, 1, False, b"items"))]
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(theirs.recv_bytes() for _ in sent))
    reader.start()
    end.send_many(sent)
    reader.join()
    assert got == sent
    ours.close(), theirs.close()


def test_a_body_with_a_large_buffer_and_the_name_main_pickles():
    """Protocol 5 writes a large buffer to the file as it is, not as bytes."""
    body = ["__main__", pickle.PickleBuffer(bytearray(2**20))]
    assert bytes(pickle.loads(dumps(body))[1]) == bytes(2**20)
