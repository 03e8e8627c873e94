"""Per-worker CPU and memory for reports, sampled from the worker processes with psutil.

The Boss asks for a sample when it answers a report request, never per task, and a sample is
taken at most every `MIN_INTERVAL` seconds: a widget reading ten reports a second costs two
samples. CPU is measured between two samples of the same process (psutil's `cpu_percent`), so
a worker's first sample has none. Memory is the resident set (RSS, which counts again the
pages a forked worker shares with its parent) and the unique set (USS, what the worker alone
holds: what ending it would give back).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reports import Report

MIN_INTERVAL = 0.5  # seconds between two samples


class UsageSampler:
    """Samples worker processes by pid and puts the figures on a report's workers."""

    def __init__(self, min_interval: float = MIN_INTERVAL) -> None:
        self._min_interval = min_interval
        self._procs: dict = {}  # pid -> psutil.Process (kept: cpu_percent needs the last one)
        self._figures: dict = {}  # pid -> (cpu, rss, uss)
        self._sampled_at = float("-inf")

    def annotate(self, report: Report, pids: list[int]) -> Report:
        """`report` with the CPU and memory of the workers whose pids are in `pids`
        (the live worker processes of this machine)."""
        if time.monotonic() - self._sampled_at >= self._min_interval:
            self._sample(pids)
        if not self._figures:
            return report
        workers = tuple(
            replace(w, **dict(zip(("cpu", "rss", "uss"), self._figures[w.pid])))
            if w.pid in self._figures and w.alive else w
            for w in report.workers)
        return replace(report, workers=workers)

    def _sample(self, pids):
        import psutil

        self._sampled_at = time.monotonic()
        live = set(pids)
        for pid in list(self._procs):
            if pid not in live:
                del self._procs[pid]
        figures = {}
        for pid in live:
            proc = self._procs.get(pid)
            first = proc is None
            try:
                if first:
                    proc = self._procs[pid] = psutil.Process(pid)
                cpu = proc.cpu_percent(None)
                memory = proc.memory_full_info()
            except psutil.Error:
                self._procs.pop(pid, None)
                continue
            figures[pid] = (None if first else cpu, float(memory.rss), float(memory.uss))
        self._figures = figures
