"""Run any subset of workloads × systems side by side; print and write medians and ratios.

    python -m bench                         # every workload, every system of each
    python -m bench -w tiny,cpu -r 7        # some workloads, 7 interleaved repetitions
    python -m bench -w tiny -s nbpar,mp.Pool-fork
    python -m bench -w boss-32 -r 3         # 32 workers, one item per message (bench/scale.py)
    python -m bench --out docs/performance.md --png docs/performance.png
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from .workloads import WORKLOADS


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--workloads", default=",".join(WORKLOADS),
                        help="comma-separated, from: " + ", ".join(WORKLOADS))
    parser.add_argument("-s", "--systems", default=None,
                        help="comma-separated subset of each workload's systems")
    parser.add_argument("-r", "--repeat", type=int, default=5,
                        help="interleaved repetitions (medians are reported)")
    parser.add_argument("-n", "--workers", type=int, default=2)
    parser.add_argument("--items", type=int, default=None,
                        help="items per map of the boss-* workloads (a quick run)")
    parser.add_argument("--out", default=None, help="write the table as Markdown here")
    parser.add_argument("--png", default=None, help="write a chart of the ratios here")
    args = parser.parse_args(argv)

    wanted = args.systems.split(",") if args.systems else None
    results = []
    for name in args.workloads.split(","):
        func, systems = WORKLOADS[name]
        if wanted:
            systems = [s for s in systems if s in wanted] or systems[:1]
        sized = {"items": args.items} if args.items and name.startswith("boss-") else {}
        start = time.perf_counter()
        result = func(systems, args.repeat, args.workers, **sized)
        made = result if isinstance(result, list) else [result]  # (boss-*: one per map)
        print("\n\n".join(format_result(r) for r in made),
              f"\n({time.perf_counter() - start:.0f} s)\n", flush=True)
        results += made
    if args.out:
        write_markdown(results, args)
    if args.png:
        write_chart(results, args.png)


def _fmt(value, unit):
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    return f"{value:.2f} {unit}"


def _fmt_extra(result, name, value):
    return format(value, result.formats.get(name, ".1%"))


def rows(result):
    out = []
    for system in result.samples:
        values = [v for v in result.samples[system] if v is not None]
        if not values:
            continue
        ratio = result.ratio(system) if result.reference in result.samples else None
        extra = {k: v.get(system) for k, v in result.extra.items() if isinstance(v, dict)}
        out.append((system, result.median(system), ratio, extra))
    return out


def format_result(result):
    lines = [f"== {result.name}: {result.what}", f"   target: {result.target}"]
    for system, median, ratio, extra in rows(result):
        more = "".join(f"  {k} {_fmt_extra(result, k, v)}" for k, v in extra.items()
                       if v is not None)
        ratio_text = f"{ratio:6.2f} ×" if ratio is not None else ""
        lines.append(f"   {system:22s} {_fmt(median, result.unit):>12s} {ratio_text}{more}")
    return "\n".join(lines)


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def write_markdown(results, args):
    lines = ["# Performance", "",
             "nbpar measured side by side with multiprocessing.Pool, "
             "concurrent.futures.ProcessPoolExecutor, joblib (loky), MPIRE and tqdm's "
             "process_map, in one run on one machine. Each system is used the way its "
             "documentation shows (warm pools kept between calls where the workload says so). "
             "Timings are medians of interleaved repetitions, so a noisy machine slows every "
             "system alike; the ratios are what to read.", "",
             "Reproduce (after `bash scripts/setup.sh`, which installs the peers too):", "",
             "```bash", ".venv/bin/python -m bench                      # everything, ~3 min",
             ".venv/bin/python -m bench -w tiny,cpu -r 7     # a subset",
             ".venv/bin/python -m bench --out docs/performance.md --png docs/performance.png",
             ".venv/bin/python -m bench -w boss-16,boss-32,boss-64 -r 5   # many workers",
             ".venv/bin/python -m bench.boss_profile -n 32   # the Boss thread's cost per task",
             "```", "",
             f"Measured with `python -m bench -r {args.repeat} -n {args.workers}` on {machine()}, "
             f"{time.strftime('%Y-%m-%d')}.", "",
             "On a shared 2-core machine a ratio moves by a few percent between runs (the "
             "apply and progress rows by up to about ±8 %): read a row within that of its "
             "target as a tie, and run the workload again with more repetitions (`-r`).", "",
             "![ratios](performance.png)", ""]
    for result in results:
        lines += [f"### {result.name}: {result.what}", "", f"Target: {result.target}.", ""]
        extra_names = [k for k, v in result.extra.items() if isinstance(v, dict)]
        header = ["system", "median", f"ratio to {result.reference}", *extra_names]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for system, median, ratio, extra in rows(result):
            cells = [system, _fmt(median, result.unit),
                     f"{ratio:.2f}" if ratio is not None else "",
                     *[_fmt_extra(result, k, extra[k]) if extra.get(k) is not None else ""
                       for k in extra_names]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines))


def write_chart(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = [r for r in results if r.reference in r.samples and len(r.samples) > 1]
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown)), squeeze=False)
    for ax, result in zip(axes[:, 0], shown):
        data = rows(result)
        names = [d[0] for d in data]
        ratios = [d[2] for d in data]
        colors = ["#1f77b4" if n.startswith("nbpar") else "#aaaaaa" for n in names]
        ax.barh(names, ratios, color=colors)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(f"{result.name}: {result.what} (× {result.reference}, lower is better)",
                     fontsize=9)
        ax.tick_params(labelsize=8)
        ax.invert_yaxis()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
