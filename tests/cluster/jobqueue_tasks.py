"""What the dask-jobqueue test runs on its grid-job Dask workers (importable there by name:
the workers start in the test's directory)."""

import time


def slow_square(x, seconds=0.15):
    time.sleep(seconds)
    return x * x
