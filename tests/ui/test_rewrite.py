"""kernel.rewrite: which `%parallel_map` calls become awaited calls, and which stay plain.

The transformer sees cells after IPython's own rewrite, so the inputs here are what IPython
makes of the magic lines (checked first, so an IPython change shows up here).
"""

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbpar.ui import kernel

CALL = "get_ipython().run_line_magic('parallel_map', 'f xs')"
AWAITED = "(await __import__('nbpar.ui.magics').ui.magics.parallel_map_awaited('f xs'))"


def ipython_rewrite(cell):
    return InteractiveShell.instance().input_transformer_manager.transform_cell(cell)


def test_ipython_makes_the_call_we_look_for():
    assert ipython_rewrite("%parallel_map f xs\n") == CALL + "\n"
    assert ipython_rewrite("r = %parallel_map f xs\n") == "r = " + CALL + "\n"


@pytest.mark.parametrize("cell, expected", [
    (CALL, AWAITED),
    ("r = " + CALL, "r = " + AWAITED),
    ("for i in range(2):\n    r = " + CALL + "\n", "for i in range(2):\n    r = " + AWAITED + "\n"),
    ("if True:\n    " + CALL + "\n", "if True:\n    " + AWAITED + "\n"),
    ("x = 'é'; " + CALL, "x = 'é'; " + AWAITED),  # offsets are UTF-8 bytes
    ("a = " + CALL + "; b = " + CALL, "a = " + AWAITED + "; b = " + AWAITED),
    ("await x\n" + CALL, "await x\n" + AWAITED),  # a cell that already awaits
])
def test_top_level_calls_are_awaited(cell, expected):
    assert kernel.rewrite(cell) == expected


@pytest.mark.parametrize("cell", [
    "def g():\n    return " + CALL + "\n",  # 'await' outside an async function
    "class C:\n    r = " + CALL + "\n",
    "g = lambda: " + CALL,
    "[" + CALL + " for _ in range(2)]",
    "s = \"" + CALL.replace('"', "'") + "\"",  # a string literal
    "get_ipython().run_line_magic('time', '%parallel_map f xs')",  # %time %parallel_map
    "get_ipython().run_line_magic('other', 'f xs')",
    "def broken(:\n    " + CALL,  # a syntax error is IPython's to report
])
def test_other_places_stay_plain(cell):
    assert kernel.rewrite(cell) is None


def test_the_transformer_is_registered_once():
    ip = InteractiveShell.instance()
    try:
        kernel.install(ip)
        kernel.install(ip)
        assert ip.input_transformers_post.count(kernel.await_parallel_map) == 1
    finally:
        kernel.uninstall(ip)
    assert kernel.await_parallel_map not in ip.input_transformers_post


def test_live_only_in_a_recent_kernel_with_asyncio_autoawait(monkeypatch):
    ip = InteractiveShell.instance()
    assert not kernel.can_await_live(ip)  # no kernel here
    monkeypatch.setattr(ip, "kernel", object(), raising=False)
    monkeypatch.setattr(kernel, "kernel_version", lambda: (7, 4))
    assert kernel.can_await_live(ip)
    monkeypatch.setattr(kernel, "kernel_version", lambda: (7, 3))
    assert not kernel.can_await_live(ip)
    monkeypatch.setattr(kernel, "kernel_version", lambda: (7, 4))
    ip.autoawait = False
    try:
        assert not kernel.can_await_live(ip)
    finally:
        ip.autoawait = True
    assert kernel.await_parallel_map([CALL + "\n"]) == [AWAITED + "\n"]
