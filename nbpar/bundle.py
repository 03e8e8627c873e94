"""What every worker of a pool holds, as one: the shared objects, worker_init and worker_exit.

They go to the workers together, so that what they have in common stays one object in each
worker: with `WorkerPool(worker_exit=actor.get_popular).map(actor.add_document, docs)` (MPIRE's
idiom) every worker has one `actor`, its own, and worker_exit reports what the tasks added.

- fork: nothing is pickled. The workers inherit the objects as they are.
- forkserver, spawn: the three are pickled once, in one stream (`shared.pack`); the fork server
  or the spawned worker unpickles them once.

A function reaches a worker later, per map. It is pickled with references into the bundle:
an object among the bundle's roots (the three; what their bound methods and partials hold, the
`actor` of `actor.get_popular`; the members of tuples, lists and dicts two levels down) is
sent as its place in the bundle -- the memo index pickle gave it, or under fork its address,
which the forked worker shares -- and the worker resolves it to its own copy. So the function and
the hooks see one object, and a function's reference to a large shared object costs nothing.

While pickling a function, the names of the modules it refers to are noted, so that the fork
server can import them ahead of the workers (`modules`).
"""

from __future__ import annotations

import io
import pickle
import sys
import types
import weakref
from functools import partial
from typing import Any

from . import tracebacks
from .errors import SerializationError, describe
from .main_refs import MainFinder

_ATOMS = (str, bytes, int, float, complex, bool, type(None))
_PARTS = ("shared_objects", "worker_init", "worker_exit")
_ROOTS_MAX = 10_000  # objects of a fork bundle that functions may refer to


class Bundle:
    """The caller's side: the objects, their packed form (None under fork), and the table of
    objects a function may refer to (id -> (reference, object))."""

    def __init__(self, objects, refs, packed=None):
        self.objects = objects  # (shared_objects, worker_init, worker_exit)
        self.refs = refs
        self.packed = packed
        self._recent: dict = {}  # id(func) -> (weakref(func), body, modules): the last few
        # pickled, held weakly (a finished call's function must not be kept alive here)

    @classmethod
    def inherited(cls, objects) -> Bundle:
        """Under fork: nothing pickled; functions refer to the objects by address."""
        return cls(objects, {id(o): (id(o), o) for o in _roots(objects)})

    @classmethod
    def packed_from(cls, objects) -> Bundle:
        """Under forkserver and spawn: one pickle for the three (arrays in shared memory)."""
        from .shared import pack
        try:
            packed, memo = pack(objects, with_memo=True)
        except Exception as exc:  # name which of the three cannot go
            raise _named(objects, exc) from exc
        # Only the bundle's roots may be referred to (not every object pickle memoized: a
        # shared dict of a million entries would cost a million-entry table on both sides).
        refs = {id(o): memo[id(o)] for o in _roots(objects)
                if id(o) in memo and memo[id(o)][1] is o}
        packed.refs = sorted(index for index, _ in refs.values())
        return cls(objects, refs, packed)

    def encode_func(self, func) -> bytes:
        """The function pickled with references into this bundle (in the Boss's thread)."""
        return self._encode(func, False)[0]

    def modules(self, func) -> set:
        """The modules the function refers to, as pickling it found them (asked only when the
        fork server starts workers: noting them costs a call per pickled object, which a
        function sent to running workers -- a joblib batch, say -- need not pay)."""
        modules = self._encode(func, True)[1]
        assert modules is not None
        return modules

    def _encode(self, func, note_modules: bool) -> tuple[bytes, set | None]:
        hit = self._recent.get(id(func))
        if hit is not None and hit[0]() is func and (hit[2] is not None or not note_modules):
            return hit[1], hit[2]
        body, modules = dumps_with_refs(func, self.refs, note_modules)
        try:
            ref = weakref.ref(func)
        except TypeError:  # no weak reference to it: not remembered
            return body, modules
        if len(self._recent) >= 8 and id(func) not in self._recent:
            self._recent.pop(next(iter(self._recent)))
        self._recent[id(func)] = (ref, body, modules)
        return body, modules

    def release(self) -> None:
        if self.packed is not None:
            self.packed.release()
        self._recent.clear()


class Opened:
    """The worker's side (or the fork server's): the three objects, and what a function's
    references resolve to (reference -> object)."""

    def __init__(self, objects, memo):
        self.shared, self.init, self.exit = objects
        self.memo = memo

    def load_func(self, body):
        if not self.memo:
            return pickle.loads(body)
        return _RefUnpickler(io.BytesIO(body), self.memo).load()


def open_bundle(obj) -> Opened:
    """In a worker or the fork server: a Packed bundle unpickled, a forked one taken as is."""
    from .shared import Packed, unpack
    if isinstance(obj, Opened):
        return obj
    if isinstance(obj, Packed):
        objects, memo = unpack(obj, with_memo=True)
        return Opened(objects, memo)
    return Opened(obj, {id(o): o for o in _roots(obj)})  # fork: the very same addresses


# ----------------------------------------------------------------------------- pickling

def _roots(objects) -> list:
    """The objects of a fork bundle a function may name: the three, what bound methods and
    partials hold, and the members of tuples, lists and dicts, two levels down."""
    out: list = []
    seen = set()
    todo = [(o, 0) for o in objects]
    while todo and len(out) < _ROOTS_MAX:
        obj, depth = todo.pop()
        if isinstance(obj, _ATOMS) or id(obj) in seen:
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, types.MethodType):
            todo += [(obj.__self__, depth), (obj.__func__, depth)]
        elif isinstance(obj, partial):
            todo += [(v, depth) for v in (obj.func, *obj.args, *obj.keywords.values())]
        elif depth < 2 and type(obj) in (tuple, list):
            todo += [(v, depth + 1) for v in obj[:_ROOTS_MAX]]
        elif depth < 2 and type(obj) is dict:
            todo += [(v, depth + 1) for v in list(obj.values())[:_ROOTS_MAX]]
    return out


class _Refs:
    """persistent_id for both picklers: a reference for a bundle object."""

    def _setup(self, refs):
        self._refs = refs
        self.modules: set | None = None

    def persistent_id(self, obj):
        entry = self._refs.get(id(obj))
        if entry is not None and entry[1] is obj:
            return entry[0]
        return None


class _NotingRefs(_Refs):
    """_Refs that also notes the modules of what it pickles (for the fork server's preload)."""

    def _setup(self, refs):
        super()._setup(refs)
        self.modules: set = set()

    def persistent_id(self, obj):
        if isinstance(obj, types.ModuleType):
            self.modules.add(obj.__name__)
        else:  # (an instance's own __getattr__ is never asked: a proxy's would go remote)
            named = isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType))
            module = getattr(obj, "__module__", None) if named else type(obj).__module__
            if isinstance(module, str):
                self.modules.add(module)
        return super().persistent_id(obj)


class _Plain:
    """No references, no modules noted: no persistent_id (MainFinder's check is then the
    only Python call, and only for objects that are not builtin values or containers)."""

    def _setup(self, refs):
        self.modules = None


def _with(mixin: type, base: Any) -> Any:
    class _Pickler(mixin, base):
        def __init__(self, file, refs):
            base.__init__(self, file, protocol=5)
            self._setup(refs)
    _Pickler.__name__ = f"{mixin.__name__.strip('_')}{base.__name__}"
    return _Pickler


_PICKLERS: dict = {}  # (cloudpickle's?, mixin) -> the pickler class, made when first wanted


def _pickler_class(cloud: bool, refs: bool, note_modules: bool) -> Any:
    """pickle's or cloudpickle's pickler, with only what is asked of it: references into
    the bundle (refs), modules noted (note_modules), or neither (no persistent_id). pickle's
    stops at what lives in __main__ (main_refs.py), which cloudpickle's then takes by value."""
    mixin = _NotingRefs if note_modules else _Refs if refs else _Plain
    key = (cloud, mixin)
    if key not in _PICKLERS:
        # cloudpickle's remembers the code it sends (tracebacks.py)
        base = tracebacks.pickler_class() if cloud else MainFinder
        _PICKLERS[key] = _with(mixin, base)
    return _PICKLERS[key]


def _dump(cls, obj, refs):
    buf = io.BytesIO()
    pickler = cls(buf, refs)
    pickler.dump(obj)
    return buf.getvalue(), pickler.modules


def dumps_with_refs(obj, refs, note_modules: bool = True) -> tuple[bytes, set | None]:
    """Pickle `obj` the way worker.dumps does (plain pickle when it can, cloudpickle for what
    names __main__, lambdas and local functions), bundle objects sent as references.
    Returns the bytes and, if asked, the names of the modules met on the way (else None).
    Without references to make or modules to note, pickling calls Python code only for
    objects that are not builtin values or containers (is it of __main__?): a large function
    (a joblib batch holding an estimator) pickles at nearly C speed, and once."""
    import cloudpickle
    try:
        data, modules = _dump(_pickler_class(False, bool(refs), note_modules), obj, refs)
    except Exception:  # noqa: BLE001 - of __main__ (FoundMain), a lambda: cloudpickle's job
        data = None
    if data is None or cloudpickle.list_registry_pickle_by_value():
        data, modules = _dump(_pickler_class(True, bool(refs), note_modules), obj, refs)
    return data, modules


class _RefUnpickler(pickle.Unpickler):
    def __init__(self, file, memo):
        super().__init__(file)
        self._memo = memo

    def persistent_load(self, ref):
        try:
            return self._memo[ref]
        except KeyError:
            raise pickle.UnpicklingError(f"a reference to an object this worker does not "
                                         f"hold ({ref!r})") from None


def _named(objects, exc) -> SerializationError:
    """The error for a bundle that does not pickle, naming the part that does not."""
    import cloudpickle
    culprit = "shared_objects"
    for name, obj in zip(_PARTS[1:], objects[1:]):
        try:
            cloudpickle.dumps(obj)
        except Exception:  # noqa: BLE001
            culprit = name
            break
    value = objects[_PARTS.index(culprit)]
    return SerializationError(
        f"{culprit} ({describe(value)}) cannot be pickled to be sent to the workers: "
        f"{type(exc).__name__}: {exc}. Under start_method='fork' it is inherited, never "
        f"pickled")


def preloadable(modules) -> list:
    """Of the modules a function refers to, those the caller has imported itself (the fork
    server imports nothing else), outside __main__ and the builtins."""
    return sorted(name for name in modules
                  if name in sys.modules and name not in ("__main__", "builtins")
                  and not name.startswith("__mp_main__"))
