"""A session's worth of pools: ten pools in a row, each a map of a SciPy filter over the tiles
of an image shared with the workers, the way a notebook runs one cell after another.

Run as `python -m bench.session SYSTEM N_WORKERS`, in a fresh interpreter per run (what the
first pool pays is part of what is measured). The function lives here, in __main__, as it
would in a notebook; the caller imports numpy and scipy.ndimage itself, before the clock
starts. Prints one JSON line: the whole run, the first pool, and the median of the others.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np
from scipy import ndimage

POOLS = 10
TILES = 16
SIDE = 1600  # a 1600 × 1600 float64 image: 20 MB


def tile_blur(image, i):
    """Blur one horizontal band of the image and sum it."""
    rows = len(image) // TILES
    return float(ndimage.gaussian_filter(image[i * rows:(i + 1) * rows], 2.0).sum())


_image = None


def _keep(image):  # mp.Pool's initializer: the image as a global of each worker
    global _image
    _image = image


def _tile_blur_global(i):
    return tile_blur(_image, i)


def one_pool(system, n, image):
    tiles = range(TILES)
    if system in ("nbpar", "nbpar-fork"):
        import nbpar
        method = "fork" if system == "nbpar-fork" else None
        with nbpar.WorkerPool(n, start_method=method, shared_objects=image) as pool:
            return pool.map(tile_blur, tiles)
    if system == "mp.Pool-fork":
        import multiprocessing as mp
        with mp.get_context("fork").Pool(n, initializer=_keep, initargs=(image,)) as pool:
            return pool.map(_tile_blur_global, tiles)
    if system == "joblib-loky":
        from joblib import Parallel, delayed
        return Parallel(n_jobs=n)(delayed(tile_blur)(image, i) for i in tiles)
    if system == "mpire":
        from mpire import WorkerPool
        with WorkerPool(n, shared_objects=image, start_method="fork") as pool:
            return pool.map(tile_blur, tiles)
    raise ValueError(f"unknown system {system!r}")


def main(system, n):
    image = np.random.default_rng(0).random((SIDE, SIDE))
    expected = [tile_blur(image, i) for i in range(TILES)]
    times = []
    for _ in range(POOLS):
        start = time.perf_counter()
        out = one_pool(system, n, image)
        times.append(time.perf_counter() - start)
        assert np.allclose(out, expected), system
    print(json.dumps({"total": sum(times), "first": times[0],
                      "later": statistics.median(times[1:])}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
