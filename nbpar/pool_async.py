"""The pool's asyncio and notebook face, mixed into WorkerPool.

`await pool.map_async(...)` and `async for r in pool.imap_async(...)` wait without
blocking the event loop, so a notebook's widget buttons act while the cell awaits (the
Boss wakes the loop through JobHandle.changed). Cancelling the awaiting task stops the
map now (STOP_RIGHTNOW), keeps what finished in `report()` and re-raises; in a notebook
the interrupt does the same at once (ui/kernel.py: interrupt_stops). With
progress_bar=True they show the pool widget in a notebook, elsewhere the tqdm bar.

It reaches the UI layer (nbpar.ui) only through imports made inside its methods: the core
pool imports nothing of the notebook.
"""

from __future__ import annotations

from .jobs import STOP_WAIT, HandOver
from .map_spec import MapSpec
from .signals import Signal


class AsyncMaps:
    """`map_async`, `starmap_async`, `map_unordered_async`, `imap_async`,
    `imap_unordered_async`, and the pool's notebook display: the awaited faces of the maps,
    built from the same `MapSpec` as the blocking ones (`WorkerPool._job`)."""

    async def map_async(self, func, iterable=None, *, chunk_size=None, progress_bar=False,
                        iterable_len=None, limit=None, report=None, checkpoint=None,
                        memory=None, duration=None, **options):
        """`map`, awaited: ``results = await pool.map_async(func, items)``.

        The event loop stays free while the map runs, so in a notebook the widget's HALT,
        RESUME and STOP buttons act while the cell awaits. Cancelling the awaiting task
        (or Jupyter's interrupt) stops the map at once and keeps what finished in `report()`.

        Parameters
        ----------
        func, iterable, chunk_size, iterable_len, limit, report, checkpoint, memory, duration, **options
            As for `map`.
        progress_bar : bool, default False
            In a notebook, show the pool's widget with its buttons; elsewhere tqdm's bar.

        Returns
        -------
        list
            One result per item, in input order. Raises as `map`.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return await self._run_list_async(MapSpec(
            "map_async", func, iterable, chunk_size=chunk_size, progress_bar=progress_bar,
            iterable_len=iterable_len, limit=limit, report=report, checkpoint=checkpoint,
            memory=memory, duration=duration, options=options))

    async def starmap_async(self, func, iterable=None, *, chunk_size=None, progress_bar=False,
                            iterable_len=None, limit=None, report=None, checkpoint=None,
                            memory=None, duration=None, **options):
        """`starmap`, awaited: each item a tuple of arguments, unpacked.

        Parameters
        ----------
        func, iterable, chunk_size, progress_bar, iterable_len, limit, report, checkpoint, memory, duration, **options
            As for `map_async`.

        Returns
        -------
        list
            One result per item, in input order. Raises as `map`.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return await self._run_list_async(MapSpec(
            "starmap_async", func, iterable, star=True, chunk_size=chunk_size,
            progress_bar=progress_bar, iterable_len=iterable_len, limit=limit, report=report,
            checkpoint=checkpoint, memory=memory, duration=duration, options=options))

    async def map_unordered_async(self, func, iterable=None, *, chunk_size=None,
                                  progress_bar=False, iterable_len=None, limit=None,
                                  report=None, checkpoint=None, memory=None, duration=None,
                                  **options):
        """`map_unordered`, awaited: the results in the order they finished.

        Parameters
        ----------
        func, iterable, chunk_size, progress_bar, iterable_len, limit, report, checkpoint, memory, duration, **options
            As for `map_async`.

        Returns
        -------
        list
            One result per item, in completion order. Raises as `map`.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return await self._run_list_async(MapSpec(
            "map_unordered_async", func, iterable, ordered=False, chunk_size=chunk_size,
            progress_bar=progress_bar, iterable_len=iterable_len, limit=limit, report=report,
            checkpoint=checkpoint, memory=memory, duration=duration, options=options))

    def imap_async(self, func, iterable, *, chunk_size=None, progress_bar=False,
                   iterable_len=None, limit=None, memory=None, duration=None, **options):
        """`imap` as an async iterator: ``async for result in pool.imap_async(f, items)``.

        The map starts when the iterator is first read.

        Parameters
        ----------
        func, iterable, chunk_size, iterable_len, limit, memory, duration, **options
            As for `imap`.
        progress_bar : bool, default False
            As for `map_async`.

        Returns
        -------
        async iterator
            The results in input order. Raises as `imap`.
        """
        return self._run_lazy_async(MapSpec(
            "imap_async", func, iterable, lazy=True, chunk_size=chunk_size,
            progress_bar=progress_bar, iterable_len=iterable_len, limit=limit, memory=memory,
            duration=duration, options=options))

    def imap_unordered_async(self, func, iterable, *, chunk_size=None, progress_bar=False,
                             iterable_len=None, limit=None, memory=None, duration=None,
                             **options):
        """`imap_unordered` as an async iterator: the results as they finish.

        Parameters
        ----------
        func, iterable, chunk_size, progress_bar, iterable_len, limit, memory, duration, **options
            As for `imap_async`.

        Returns
        -------
        async iterator
            The results in completion order. Raises as `imap`.
        """
        return self._run_lazy_async(MapSpec(
            "imap_unordered_async", func, iterable, ordered=False, lazy=True,
            chunk_size=chunk_size, progress_bar=progress_bar, iterable_len=iterable_len,
            limit=limit, memory=memory, duration=duration, options=options))

    # -- the awaited faces' runners (the job is built as for the blocking ones: pool._job)
    async def _run_list_async(self, spec):
        job = self._job(spec)
        await self._run_async(job, spec.progress_bar)
        return spec.results(job.ledger)

    def _run_lazy_async(self, spec):
        job = self._job(spec)
        return self._iterate_async(job, spec.ordered, spec.progress_bar)

    async def _run_async(self, job, progress_bar):
        import asyncio

        from .ui.kernel import interrupt_stops

        handle = job.handle
        store = getattr(handle, "checkpoint", None)
        view = self._widget_view(progress_bar)  # routes output before the first task runs
        try:
            self._submit(job)
            view = view or self._progress(job, progress_bar)
            with interrupt_stops(self) as guard:
                if store is None:
                    await self._until_done(handle)
                else:
                    await self._store_results_async(job, store)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self._signal(Signal.STOP_RIGHTNOW)
            await self._until_done(handle, STOP_WAIT)
            raise
        finally:
            if store is not None:
                store.close()
            if view is not None:
                view.close()
        if handle.error is not None:
            raise guard.translate(handle.error)

    async def _store_results_async(self, job, store):
        """`_store_results` awaited: each delivered result written to the checkpoint as it
        arrives, the loop free in between. The map's own error is left to the caller."""
        handle = job.handle
        try:
            async for indices, results in handle.achunks():
                store.record(indices, results, job.ledger.items_by_index)
        except Exception as exc:
            if handle.done and exc is handle.error:
                return
            if not handle.done:  # a result that cannot be stored: stop the map here
                self._boss.cancel(job.id)
                await self._until_done(handle, STOP_WAIT)
            raise

    async def _iterate_async(self, job, ordered, progress_bar):
        import asyncio

        from .ui.kernel import interrupt_stops

        handle = job.handle
        view = self._widget_view(progress_bar)
        finished = False
        hand_over = HandOver(self._boss, job, ordered)
        try:
            self._submit(job)
            view = view or self._progress(job, progress_bar)
            with interrupt_stops(self) as guard:
                chunks = handle.achunks()
                while True:
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except BaseException as error:  # the map's own error
                        translated = guard.translate(error)
                        if translated is error:
                            raise
                        raise translated from None
                    ready = hand_over.ready(*chunk)
                    for value in ready:
                        yield value
                    hand_over.taken(len(ready))
            finished = True
        except (KeyboardInterrupt, asyncio.CancelledError):
            if not handle.done:
                self._signal(Signal.STOP_RIGHTNOW)
                await self._until_done(handle, STOP_WAIT)
            raise
        finally:
            if not finished:
                hand_over.abandon()
            if view is not None:
                view.close()

    @staticmethod
    async def _until_done(handle, timeout=None):
        """Await a map's end (or `timeout` seconds) without blocking the event loop."""
        import asyncio

        while not handle.done:
            changed = handle.changed()
            if handle.done:
                return
            try:
                await asyncio.wait_for(changed, timeout)
            except TimeoutError:
                return

    def _widget_view(self, progress_bar):
        """progress_bar=True in a notebook: the pool widget (else the tqdm bar, made later)."""
        if not progress_bar:
            return None
        from .ui.kernel import in_notebook
        if not in_notebook():
            return None
        from .ui.widget import PoolWidget
        return PoolWidget.for_map(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """In a notebook a pool shows as its live widget (nbpar.ui); elsewhere as its repr."""
        from .ui.kernel import pool_mimebundle
        return pool_mimebundle(self, include, exclude)
