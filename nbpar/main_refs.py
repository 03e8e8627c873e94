"""Whether a body that plain pickle took refers to something that lives in `__main__`.

Plain pickle refers to classes and functions by module and name. A worker under "spawn" or
"forkserver" has a `__main__` of its own, so such a reference would not load there: what
lives in the caller's `__main__` (a notebook cell, a script) must travel by value, through
cloudpickle, which costs a Python call per class, function and instance pickled.

A plain pickle that does not contain the bytes b"__main__" refers to no `__main__`. One that
does may only hold the string as data (joblib ships the warning filters, which name
`__main__`). `MainFinder` tells them apart: a hook called for each object that is not a
builtin value or container stops at the first whose class, or which itself as a class or
function, lives in `__main__`. That is every way a pickle can name `__main__`, memo
references included, since the memo only repeats an object already looked at.

A function sent to the workers (a joblib batch is one) is pickled by MainFinder in the first
place. A body of a call (worker.dumps) is pickled by plain pickle, cheaper for the small ones;
if it contains b"__main__", `refers_to_main` pickles it once more, to nowhere, with MainFinder.
"""

from __future__ import annotations

import pickle
import types
from typing import Any

_NOWHERE = types.SimpleNamespace(write=lambda data: None)  # (data: bytes or a buffer)


class FoundMain(Exception):
    """Raised by MainFinder's pickling at the first object of `__main__`."""


class MainFinder(pickle.Pickler):
    """pickle's Pickler that stops, raising FoundMain, at the first object of `__main__`: one
    Python call per object that is not a builtin value or container."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)):
            module = getattr(obj, "__module__", None)
        else:
            module = type(obj).__module__
        if module == "__main__":
            raise FoundMain
        return NotImplemented


def refers_to_main(obj: Any) -> bool:
    """True when pickling `obj` names a class, function or instance of `__main__`. (An
    object that fails to pickle here failed for plain pickle too.)"""
    try:
        MainFinder(_NOWHERE, protocol=5).dump(obj)
    except FoundMain:
        return True
    return False
