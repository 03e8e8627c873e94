"""binder/ works: a fresh venv built the way mybinder's repo2docker builds the image runs the
quick-start notebook, and the notebook shows what its stored outputs show.

repo2docker copies the repository, and from its root runs `pip install -r
binder/requirements.txt` (with a binder/ folder it ignores the root's pyproject.toml, so that
file installs the package as `.` plus extras; runtime.txt picks the Python). This test does the
same in a temporary copy of the repository (so no build files land in the work tree), with
pip's cache, then executes notebooks/01_quick_start.ipynb with nbclient in that venv's own
kernel. About a minute, mostly pip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/01_quick_start.ipynb"
SANITIZE = ROOT / "notebooks" / "nbval_sanitize.cfg"

pytestmark = pytest.mark.timeout(900)

# Run by the venv's own Python: execute the notebook in that venv's kernel, then check (in the
# same kernel) that nbpar and the kernel come from the venv, not from the work tree.
DRIVER = r"""
import json, sys, time
import nbformat
from nbclient import NotebookClient

source, workdir, executed = sys.argv[1:4]
nb = nbformat.read(source, as_version=4)
check = nbformat.v4.new_code_cell(
    "import json, sys, nbpar; print(json.dumps([sys.prefix, nbpar.__file__]))")
nb.cells.append(check)
started = time.monotonic()
NotebookClient(nb, timeout=300, kernel_name="python3",
               resources={"metadata": {"path": workdir}}).execute()
seconds = time.monotonic() - started
nb.cells.pop()
nbformat.write(nb, executed)
print(json.dumps({"seconds": seconds, "where": json.loads(check.outputs[0]["text"])}))
"""


def _sanitizer():
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", SANITIZE.read_text(), flags=re.M)

    def sanitize(text):
        for pattern, replacement in pairs:
            text = re.sub(pattern, replacement, text)
        return text
    return sanitize


def _shown(cell, sanitize) -> list:
    """What a cell shows, as nbval compares it: streams merged per name, text reprs."""
    streams, shown = {}, []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
            streams[out["name"]] = streams.get(out["name"], "") + text
        elif out["output_type"] in ("execute_result", "display_data"):
            text = out["data"].get("text/plain", "")
            shown.append(("data", sanitize("".join(text) if isinstance(text, list) else text)))
        elif out["output_type"] == "error":
            shown.append(("error", out["ename"], out["evalue"]))
    shown.extend(("stream", name, sanitize(text)) for name, text in sorted(streams.items()))
    return shown


def _tutorial_imports() -> list[str]:
    """The top-level modules the tutorials import (each `import x` / `from x import` line)."""
    import nbformat
    found = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                found.update(m.split(".")[0] for m in re.findall(
                    r"^\s*(?:from|import)\s+([\w.]+)", cell.source, flags=re.M))
    return sorted(found)


def test_runtime_txt_matches_requires_python():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert minimum and int(runtime.split(".")[1]) >= int(minimum.group(1)), (runtime, requires)


def test_binder_requirements_run_the_quick_start(tmp_path):
    repo = tmp_path / "repo"  # what repo2docker copies into the image
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".venv-*", "artifacts", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", ".ipynb_checkpoints"))
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"

    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                          "binder/requirements.txt"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, f"pip failed:\n{pip.stdout[-3000:]}\n{pip.stderr[-3000:]}"
    install_seconds = time.monotonic() - started

    executed = tmp_path / "01.executed.ipynb"
    run = subprocess.run([str(python), "-c", DRIVER, str(repo / NOTEBOOK),
                          str(repo / "notebooks"), str(executed)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"the notebook failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    prefix, nbpar_file = outcome["where"]
    assert Path(prefix).resolve() == venv.resolve(), f"the kernel ran in {prefix}, not the venv"
    assert Path(nbpar_file).resolve().is_relative_to(venv.resolve()), nbpar_file
    assert outcome["seconds"] < 120, f"notebook 01 took {outcome['seconds']:.0f} s"

    # the other tutorials run there too: what they import is installed
    modules = _tutorial_imports()
    assert {"nbpar", "sklearn", "pandas", "dask"} <= set(modules), modules
    probe = subprocess.run([str(python), "-c", f"import {', '.join(modules)}"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, f"a tutorial's import fails on binder:\n{probe.stderr[-3000:]}"

    import nbformat
    sanitize = _sanitizer()
    stored = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    fresh = nbformat.read(executed, as_version=4)
    assert len(stored.cells) == len(fresh.cells)
    for i, (old, new) in enumerate(zip(stored.cells, fresh.cells)):
        if old.cell_type == "code":
            assert _shown(new, sanitize) == _shown(old, sanitize), f"cell {i}: {old.source[:80]}"
    print(f"binder venv: pip {install_seconds:.0f} s, notebook 01 {outcome['seconds']:.0f} s")
