"""A real IPython kernel for the UI tests, driven over jupyter_client as a frontend would.

`LiveKernel.run(code, react)` executes a cell and hands every IOPub message to `react`, which
may click a widget button (a comm message, as JupyterLab sends it) or interrupt the kernel
while the cell is still running. Widget models are followed from their comm messages, so a
test reads what a browser would show.
"""

from __future__ import annotations

import os
import queue
import re
import time
from dataclasses import dataclass, field

import pytest


@dataclass
class Cell:
    msg_id: str
    messages: list = field(default_factory=list)
    result: str | None = None
    error: dict | None = None
    stdout: str = ""
    widget_ids: list = field(default_factory=list)  # models displayed by this cell


class LiveKernel:
    def __init__(self, tmp_path):
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3",
                                connection_file=str(tmp_path / "kernel.json"))
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.models: dict[str, dict] = {}  # comm id -> widget state

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)

    def run(self, code, react=None, timeout=60) -> Cell:
        cell = Cell(self.kc.execute(code))
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cell did not finish within {timeout} s: {code!r}")
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:  # nothing new: `react` may still act on time or on files
                if react is not None:
                    react(None, cell)
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("comm_open", "comm_msg"):
                state = content.get("data", {}).get("state")
                if state:
                    self.models.setdefault(content["comm_id"], {}).update(state)
            mine = msg["parent_header"].get("msg_id") == cell.msg_id
            if mine:
                cell.messages.append(msg)
                if kind == "stream":
                    cell.stdout += content["text"]
                elif kind == "error":
                    cell.error = content
                if kind == "execute_result":
                    cell.result = content["data"]["text/plain"]
                if kind in ("execute_result", "display_data"):
                    view = content["data"].get("application/vnd.jupyter.widget-view+json")
                    if view:
                        cell.widget_ids.append(view["model_id"])
            if react is not None:
                react(msg, cell)
            if mine and kind == "status" and content["execution_state"] == "idle":
                return cell

    # -- the widget, as a frontend sees it
    def find(self, model_name, **match):
        for comm_id, state in self.models.items():
            if state.get("_model_name") == model_name and all(
                    state.get(k) == v for k, v in match.items()):
                yield comm_id, state

    def button(self, label) -> str:
        ids = [comm_id for comm_id, _ in self.find("ButtonModel", description=label)]
        return ids[-1]  # the latest widget's

    def click(self, label):
        msg = self.kc.session.msg("comm_msg", {
            "comm_id": self.button(label),
            "data": {"method": "custom", "content": {"event": "click"}}})
        self.kc.shell_channel.send(msg)

    def header(self) -> str:
        """The latest widget's header text (holds the map's status)."""
        headers = [s["value"] for _, s in self.find("HTMLModel")
                   if s.get("value", "").startswith("<b>nbpar</b>")]
        return re.sub("<[^>]+>", "", headers[-1]) if headers else ""

    def descendants(self, model_id) -> set:
        """The ids of a widget's children, their children, and so on."""
        found, todo = set(), [model_id]
        while todo:
            state = self.models.get(todo.pop(), {})
            for child in state.get("children", []):
                child = child.removeprefix("IPY_MODEL_")
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def pid(self) -> int:
        return self.km.provisioner.process.pid

    def pane_text(self) -> str:
        outs = [s for _, s in self.find("OutputModel")]
        return "".join(o["text"] for o in outs[-1].get("outputs", [])) if outs else ""


@pytest.fixture(scope="module")
def live_kernel(tmp_path_factory):
    """One kernel per module, warmed up (nbpar loaded, fork server started) before the
    tests' leftover checks take their snapshot of the processes."""
    kernel = LiveKernel(tmp_path_factory.mktemp("kernel"))
    try:
        cell = kernel.run("%load_ext nbpar\n%parallel_map -n 1 abs [-1]")
        assert cell.error is None, cell.error
        yield kernel
    finally:
        kernel.close()



@pytest.fixture
def record_starts(live_kernel, tmp_path):
    """Runs a module's set-up cell in the kernel, its `{record}` naming an empty file where
    the tasks note when they start; returns that file's path."""
    def run(setup):
        path = tmp_path / "starts.txt"
        path.touch()
        cell = live_kernel.run(setup.format(record=str(path)))
        assert cell.error is None, cell.error
        return path
    return run
