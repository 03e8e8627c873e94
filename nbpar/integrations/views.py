"""How the layers show a run: the pool widget in a notebook (its buttons send the signals),
tqdm's bar elsewhere. The target is a pool, or anything that reads like one (a joblib call's
JoblibRun): `report()`, `send()`, `n_jobs`, `start_method`, `on_output`."""

from __future__ import annotations

from contextlib import contextmanager


def show(target, total=None, initial=0, **tqdm_options):
    """A view following `target` until its `close()`."""
    from ..ui.kernel import in_notebook
    if in_notebook():
        from ..ui.widget import PoolWidget
        return PoolWidget.for_map(target, live=False)
    from ..ui.progress import ProgressBar
    return ProgressBar(target, total, initial=initial, **tqdm_options)


@contextmanager
def borrowed_pool(pool, make):
    """The caller's pool as it is, or one made by `make()` for this call and closed (its
    workers joined) when the call ends."""
    if pool is not None:
        yield pool
        return
    own = make()
    try:
        yield own
    finally:
        own.close()
        own.join()
