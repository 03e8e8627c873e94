"""The state machine's own cost per task: CPU per BatchDone step, nothing else running.

    python -m bench.state_step                 # 32 workers, 20,000 items, chunk_size=1
    python -m bench.state_step -n 64 --task-timeout 60

Drives `BossState` the way the Boss thread does for a map of no-op tasks one item per
message: every worker up, each batch's result handed back in turn, the next batch taken from
the instructions. No process, pipe or pickle is involved, so the figure is the pure machine's
step (CPU time, the least and the median of the runs) and moves little on a loaded machine.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections import deque

from nbpar import state as st
from nbpar.reports import Ledger
from nbpar.scheduling import AdaptiveChunker
from nbpar.sources import ListSource


def run(n_workers: int = 32, n_items: int = 20_000, chunk_size: int | None = 1,
        task_timeout: float | None = None) -> float:
    """CPU seconds per BatchDone step over one map."""
    state = st.BossState(n_workers, keep_alive=True, task_timeout=task_timeout)
    items = list(range(n_items))
    job = st.Job(1, abs, ListSource(items), Ledger(n_items, items, None, True), total=n_items,
                 chunker=AdaptiveChunker(chunk_size), func_name="abs")
    job.handle = object()
    now = 0.0
    state.handle(st.JobSubmitted(job), now)  # (asks for the workers: StartWorker each)
    queues: dict[int, deque[st.TaskBatch]] = {w: deque() for w in range(n_workers)}

    def take(out: list[st.Instruction]) -> None:
        for instr in out:
            if type(instr) is st.Dispatch:
                queues[instr.worker_id].append(instr.batch)
    for w in range(n_workers):
        take(state.handle(st.WorkerReady(w, 1000 + w), now))
    steps = 0
    start = time.process_time()
    for w in itertools.cycle(range(n_workers)):
        if not state.jobs:
            break
        if not queues[w]:
            continue
        batch = queues[w].popleft()
        now += 1e-5
        take(state.handle(st.BatchDone(w, batch.batch_id, batch.items, 1e-6), now))
        steps += 1
    cpu = time.process_time() - start
    assert job.ledger.done == n_items, job.ledger.done
    return cpu / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--workers", type=int, default=32)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=1)
    parser.add_argument("--task-timeout", type=float, default=None)
    parser.add_argument("-r", "--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    runs = [run(args.workers, args.items, args.chunk_size, args.task_timeout)
            for _ in range(args.repeat)]
    print(f"{args.workers} workers, {args.items:,} items, chunk_size={args.chunk_size}"
          + (f", task_timeout={args.task_timeout}" if args.task_timeout else "")
          + f": {min(runs) * 1e6:.1f} µs (least) / {statistics.median(runs) * 1e6:.1f} µs "
          f"(median of {args.repeat}) of CPU per BatchDone step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
