"""How shared objects reach workers once, and the board where workers mark their progress.

- fork: nothing is pickled; workers inherit the objects copy-on-write.
- forkserver: the objects are pickled once, sent to the fork server, unpickled there once, and
  every worker forked from the server shares them copy-on-write.
- spawn: the same pickled bytes reach each worker once, when it starts.
- threading: the very same objects.

Under spawn and forkserver, NumPy arrays anywhere in the objects go to shared memory (the bytes
carry only their names), and `multiprocessing` locks, `Array` and `Value` travel the way
multiprocessing itself passes them to a child it starts: locks by name, memory arenas by file
descriptor. A lock made by the default *fork* context has no name (the stdlib unlinks it at
once and refuses to send it anywhere else); such a lock is given a named semaphore in place, in
the caller, so the caller and every worker keep using one and the same lock.
"""

from __future__ import annotations

import io
import itertools
import logging
import mmap
import os
import pickle
import secrets
import sys
import types
import weakref
from multiprocessing import context as _mp_context

from . import tracebacks

_log = logging.getLogger(__name__)

LARGE_COPY = 100 * 2**20  # plain arrays copied into shared memory past this: a warning
_received_fds: list[int] = []  # fds that came with the packed objects, in this process
_attached: list = []  # shared-memory segments this process maps for its shared objects
_segment_ids = itertools.count()


class Packed:
    """Shared objects pickled once, with the fds they need, ready to travel to a new process."""

    def __init__(self, data: bytes, fds: list[int], segments=(), refs=()):
        self.data = data
        self.fds = fds
        self.refs = list(refs)  # memo indices a later pickle may refer to (bundle.py)
        self.segments = list(segments)  # caller side only: SharedMemory objects to unlink
        self.copied = sum(seg.size for seg in self.segments)  # bytes of plain arrays copied

    def __reduce__(self):  # pickled by multiprocessing while it spawns a worker
        from multiprocessing import reduction
        return (_rebuild_packed, (self.data, [reduction.DupFd(fd) for fd in self.fds],
                                  self.refs))

    def release(self):
        """Unlink the shared-memory segments (caller side)."""
        for seg in self.segments:
            _unlink(seg)
        self.segments.clear()


def warn_if_copied(packed: Packed, start_method: str) -> None:
    """A large plain array among the shared objects costs the process tree two copies under
    forkserver and spawn: the caller's own, which no other process can map, and the shared
    one. Say so, and how to keep one (measured: 2.00 copies of a 400 MB array against 1.00
    with nbpar.shared_array; bench/memory.py)."""
    if packed.copied < LARGE_COPY:
        return
    import warnings
    warnings.warn(
        f"{packed.copied / 2**20:.0f} MB of plain NumPy arrays among the shared objects were "
        f"copied into shared memory for start_method={start_method!r}: the caller's arrays "
        f"and the shared copy make 2 copies. To keep one, create the array with "
        f"nbpar.shared_array (or share nbpar.shared_array(arr) and drop arr), or use "
        f"start_method='fork'", UserWarning, stacklevel=_outside_nbpar())


def _outside_nbpar() -> int:
    """The stacklevel of the first frame outside nbpar: the user's line that shared."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _rebuild_packed(data, dupfds, refs=()):
    return Packed(data, [d.detach() for d in dupfds], refs=refs)


def _unlink(seg):
    try:
        seg.close()
    except Exception:  # noqa: BLE001 - a view still alive keeps the mapping; unlink anyway
        _log.debug("closing shared memory %s failed", seg.name, exc_info=True)
    try:
        seg.unlink()
    except FileNotFoundError:
        pass  # unlinked already


class _FdSlot:
    """An fd inside packed bytes: its position in the list that travels beside them."""

    def __init__(self, ind):
        self.ind = ind

    def detach(self):
        return _received_fds[self.ind]


class _Collector:
    """Stands in for multiprocessing's spawning Popen while we pickle shared objects."""

    DupFd = _FdSlot

    def __init__(self):
        self.fds: list[int] = []

    def duplicate_for_child(self, fd):
        self.fds.append(fd)
        return len(self.fds) - 1


def pack(obj, with_memo=False):
    """Pickle shared objects once for spawn/forkserver workers. With `with_memo`, also the
    pickler's memo (id -> (index, object)): what a later pickle may refer to (bundle.py)."""
    from multiprocessing import synchronize
    from multiprocessing.reduction import ForkingPickler

    collector = _Collector()
    segments = []
    mp_reducers = ForkingPickler._extra_reducers  # arenas, shared ctypes, connections

    class SharedPickler(tracebacks.pickler_class()):
        def reducer_override(self, value):
            if isinstance(value, synchronize.SemLock) and getattr(value, "_is_fork_ctx", False):
                _name_semaphore(value)
            elif _is_array(value):
                return _array_to_shm(value, segments)
            reducer = mp_reducers.get(type(value))
            if reducer is not None:
                return reducer(value)
            return super().reducer_override(value)

    buf = io.BytesIO()
    pickler = SharedPickler(buf, protocol=5)
    _mp_context.set_spawning_popen(collector)
    try:
        pickler.dump(obj)
    except Exception:
        for seg in segments:
            _unlink(seg)
        raise
    finally:
        _mp_context.set_spawning_popen(None)
    packed = Packed(buf.getvalue(), collector.fds, segments)
    return (packed, pickler.memo.copy()) if with_memo else packed


def unpack(obj, with_memo=False):
    """In a worker or the fork server: the shared objects back from `pack` (with
    `with_memo`, also the objects at the memo indices `obj.refs`: index -> object)."""
    if not isinstance(obj, Packed):
        return (obj, {}) if with_memo else obj
    _received_fds[:] = obj.fds
    if not with_memo:
        return pickle.loads(obj.data)
    unpickler = pickle.Unpickler(io.BytesIO(obj.data))
    loaded = unpickler.load()
    memo = unpickler.memo.copy()
    return loaded, {index: memo[index] for index in obj.refs if index in memo}


def _is_array(value) -> bool:
    np = sys.modules.get("numpy")
    return (np is not None and type(value) is np.ndarray and value.nbytes > 0
            and not value.dtype.hasobject)


def new_segment(size):
    """A new shared-memory segment named after this process (so leaks can be traced)."""
    from multiprocessing import shared_memory
    for _ in range(100):
        name = f"nbpar-{os.getpid()}-{next(_segment_ids)}-{secrets.token_hex(4)}"
        try:
            return shared_memory.SharedMemory(name=name, create=True, size=size)
        except FileExistsError:
            continue
    raise FileExistsError("cannot find a free shared-memory name")


_owned_arrays: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # seg name -> root


def shared_array(data=None, *, shape=None, dtype=None):
    """A NumPy array that lives in shared memory from the start.

    nbpar hands it (and C-contiguous views of it) to workers by name under every start
    method, so even the caller holds no second copy (a plain array among the shared objects
    is copied into shared memory, making two). The memory is freed when the array is.

    Parameters
    ----------
    data : array_like, optional
        Copied in once (then drop the original); gives the shape and dtype.
    shape : int or tuple of int, optional
        Without `data`: the shape of a new, zero-filled array.
    dtype : data-type, optional
        Without `data`: its type. Default float.

    Returns
    -------
    numpy.ndarray
    """
    import numpy as np
    if data is not None:
        data = np.asarray(data)
        shape, dtype = data.shape, data.dtype
    dtype = np.dtype(dtype if dtype is not None else float)
    nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
    seg = new_segment(nbytes)
    arr = np.ndarray(shape, dtype=dtype, buffer=seg.buf)
    if data is not None:
        arr[...] = data
    _owned_arrays[seg.name] = arr
    weakref.finalize(arr, _unlink, seg)
    return arr


def _owning_segment(arr):
    """(segment name, byte offset) when `arr` is a C-contiguous view of a shared_array."""
    root = arr
    while isinstance(root.base, type(arr)):
        root = root.base
    for name, owner in list(_owned_arrays.items()):
        if owner is root and arr.flags.c_contiguous:
            return name, arr.ctypes.data - root.ctypes.data
    return None


def _array_to_shm(arr, segments):
    owned = _owning_segment(arr)
    if owned is not None:  # already shared: send its name, copy nothing
        return (_attach_array, (owned[0], arr.shape, arr.dtype.str, owned[1]))
    seg = new_segment(arr.nbytes)
    segments.append(seg)
    np = sys.modules["numpy"]
    view = np.ndarray(arr.shape, dtype=arr.dtype, buffer=seg.buf)
    view[...] = arr
    del view
    return (_attach_array, (seg.name, arr.shape, arr.dtype.str))


def _attach_array(name, shape, dtype, offset=0):
    import numpy as np
    seg = attach_shm(name)
    _attached.append(seg)
    arr = np.ndarray(shape, dtype=np.dtype(dtype), buffer=seg.buf, offset=offset)
    arr.flags.writeable = False  # shared by every worker: writes would reach them all
    return arr


def attach_shm(name):
    """Map an existing segment without registering it with this process's resource tracker
    (the caller owns it and unlinks it; a worker must not)."""
    from multiprocessing import resource_tracker, shared_memory
    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


def _name_semaphore(lock):
    """Give a fork-context lock a named semaphore, in place, so other processes can open it."""
    import _multiprocessing
    from multiprocessing import resource_tracker, synchronize, util

    old = lock._semlock
    new = _multiprocessing.SemLock(old.kind, old._get_value(), old.maxvalue,
                                   synchronize.SemLock._make_name(), False)
    resource_tracker.register(new.name, "semaphore")
    util.Finalize(lock, synchronize.SemLock._cleanup, (new.name,), exitpriority=0)
    lock._semlock = new
    lock._make_methods()
    lock._is_fork_ctx = False


# ----------------------------------------------------------------------------- progress

def _close_board(slots, segment, anonymous):
    slots.release()
    if segment is not None:
        _unlink(segment)
    else:
        anonymous.close()


class ProgressBoard:
    """One 8-byte slot per worker where it writes its position in the current batch, so the
    Boss can name the very item a crashed worker was running and show the current item."""

    def __init__(self, n: int, named: bool):
        self.n = n
        self._segment = None
        if named:
            self._segment = new_segment(8 * n)
            self.handle = self._segment.name
            self.slots = self._segment.buf.cast("q")
        else:
            self._map = mmap.mmap(-1, 8 * n)  # anonymous and shared: inherited through fork
            self.handle = self._map
            self.slots = memoryview(self._map).cast("q")
        self._finalizer = weakref.finalize(self, _close_board, self.slots, self._segment,
                                           None if named else self._map)

    def __getitem__(self, worker_id):
        return self.slots[worker_id]

    def close(self) -> None:
        self._finalizer()

    @staticmethod
    def attach(handle):
        """In a worker: a writable view of the slots."""
        if handle is None:
            return [0] * 1024
        if isinstance(handle, str):
            seg = attach_shm(handle)
            _attached.append(seg)
            return seg.buf.cast("q")
        return memoryview(handle).cast("q")
