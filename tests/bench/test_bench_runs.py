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


def test_the_many_workers_workload_reports_rates_and_efficiency_per_map(tmp_path):
    out = tmp_path / "perf.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "-w", "boss-16", "-r", "1", "--items", "48",
         "-s", "nbpar,mp.Pool-fork", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    for title in ("boss-16 no-op, chunk_size=1", "boss-16 no-op, automatic chunk size",
                  "boss-16 10 ms, chunk_size=1", "boss-16 10 ms, automatic chunk size"):
        assert f"### {title}:" in text
    assert "| tasks/s | tasks/s ÷ mp.Pool's | parallel efficiency |" in text
    assert text.count("| mp.Pool-fork | ") == 4 and text.count("| nbpar | ") == 4
    assert "| 1.00 |" in text  # mp.Pool's own throughput ratio
