"""The benchmark harness runs end to end (tiny settings); it asserts shape, never speed."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_writes_a_table_and_a_chart(tmp_path):
    out, png = tmp_path / "perf.md", tmp_path / "perf.png"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "-w", "startup,control", "-r", "1",
         "-s", "nbpar,mp.Pool-forkserver", "--out", str(out), "--png", str(png)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    assert "### startup" in text and "| nbpar |" in text and "| mp.Pool-forkserver |" in text
    assert "halt→last start" in text
    assert png.stat().st_size > 1000


def test_the_session_workload_runs_each_system_in_a_fresh_interpreter(tmp_path):
    out = tmp_path / "perf.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "-w", "session", "-r", "1", "-s", "nbpar,nbpar-fork",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    assert "### session" in text and "| nbpar |" in text and "| nbpar-fork |" in text
    assert "first pool's share of the run" in text
