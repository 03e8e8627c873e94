"""nbpar's settings for Dask, read as Dask config keys under `nbpar.` (each time they matter):
`dask.config.set({"nbpar.batch-time": 0.3})`, or in a Dask YAML config file."""

from __future__ import annotations

import dask

DEFAULTS = {
    "batch-time": 0.15,  # seconds a batch aims at: many times a Dask task's own cost
    "no-workers-timeout": 30.0,  # a cluster without workers this long fails the map
    "kill-grace": 1.0,  # a killed slot's running batch gets this long to stop by itself
    "inline-bytes": 64 * 1024,  # larger functions / hooks are scattered once, not sent along
}


def setting(name):
    return dask.config.get(f"nbpar.{name}", DEFAULTS[name])
