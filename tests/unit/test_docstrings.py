"""Every public name documents itself: what IPython's `?` and Jupyter's Shift-Tab show.

The public API is `nbpar.__all__`, `nbpar.PoolWidget` and `nbpar.mpire.WorkerPool`. Each
function, each class and each public method or property that nbpar defines (inherited ones
from the standard library keep their own documentation) must have a docstring, and that
docstring must name every parameter of its signature (a class's docstring names those of its
constructor), so nothing a user can pass goes unexplained.
"""

from __future__ import annotations

import inspect
import re

import pytest

import nbpar
import nbpar.mpire


def _public_objects():
    objects = {name: getattr(nbpar, name) for name in nbpar.__all__}
    objects["PoolWidget"] = nbpar.PoolWidget
    objects["mpire.WorkerPool"] = nbpar.mpire.WorkerPool
    return objects


def _ours(obj) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == "nbpar" or module.startswith("nbpar.")


def _members(public, cls):
    """(public name, member, parameters) for each public method or property that an nbpar
    class of the MRO defines; a method's parameters leave out self and cls."""
    seen = set()
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(value, property):
                yield f"{public}.{name}", value, []
            elif isinstance(value, staticmethod):
                yield f"{public}.{name}", getattr(cls, name), _parameters(value.__func__)
            elif callable(value) or isinstance(value, classmethod):
                # bound to the class, a classmethod's signature leaves out cls already
                yield f"{public}.{name}", getattr(cls, name), _parameters(
                    getattr(cls, name), skip_first=True)


def _parameters(func, skip_first=False) -> list[str]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    names = [name for name in signature.parameters if not name.startswith("_")]
    return names[1:] if skip_first and names and names[0] in ("self", "cls") else names


def _cases():
    cases = []
    for public, obj in _public_objects().items():
        if inspect.isclass(obj):
            init = None
            for klass in obj.__mro__:  # the constructor nbpar defines, if any
                if _ours(klass) and "__init__" in vars(klass):
                    init = vars(klass)["__init__"]
                    break
            params = _parameters(init, skip_first=True) if init is not None else []
            cases.append((public, obj, params))
            cases.extend(_members(public, obj))
        else:
            cases.append((public, obj, _parameters(obj)))
    return cases


def _missing(doc: str, params: list[str]) -> list[str]:
    return [p for p in params if not re.search(rf"(?<![\w]){re.escape(p)}(?![\w])", doc)]


@pytest.mark.parametrize("name,obj,params", _cases(), ids=[c[0] for c in _cases()])
def test_public_name_has_a_docstring_naming_its_parameters(name, obj, params):
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"{name} has no docstring"
    missing = _missing(doc, params)
    assert not missing, f"{name}'s docstring does not mention {', '.join(missing)}"


def test_the_walk_covers_the_map_family_and_the_signals():
    names = {c[0] for c in _cases()}
    for method in ("map", "starmap", "map_unordered", "imap", "imap_unordered", "apply_async",
                   "submit", "map_async", "starmap_async", "imap_async",
                   "imap_unordered_async", "halt", "resume", "stop", "send", "report",
                   "close", "join", "terminate"):
        assert f"WorkerPool.{method}" in names
    for method in ("map", "apply", "imap", "starmap_async", "close", "join", "terminate"):
        assert f"Pool.{method}" in names
    assert {"Executor.submit", "Executor.map", "Executor.shutdown", "PoolWidget"} <= names


def test_the_checker_sees_a_missing_parameter():
    def documented(items, chunk_size=None):
        """Run over `items`."""

    assert _missing(inspect.getdoc(documented), _parameters(documented)) == ["chunk_size"]


def test_ipython_shows_the_map_docstring():
    """What `pool.imap?` (and Shift-Tab) shows is the method's own docstring."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["nbpar"] = nbpar
    doc = shell.object_inspect("nbpar.WorkerPool.imap")["docstring"]
    assert doc == inspect.getdoc(nbpar.WorkerPool.imap)
    assert "chunk_size" in doc and "Yields" in doc
