"""backend="dask": what a task logs with nbpar.get_logger reaches the caller's handlers and
the output sink, at the pool's log level, as from a local worker."""

from __future__ import annotations

import logging

import pytest

import nbpar

pytestmark = pytest.mark.timeout(60)

LOGGER = "nbpar.test.dask"


def chatty(x):
    log = nbpar.get_logger(LOGGER)
    log.info("item %s", x)
    log.debug("detail %s", x)
    return x


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def collected():
    handler, logger = Collect(), logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_task_records_reach_the_callers_handlers_and_the_sink(client, workers, collected):
    lines = []
    with nbpar.WorkerPool(backend="dask", client=client,
                          on_output=lambda wid, stream, line: lines.append((stream, line))
                          ) as pool:
        assert pool.map(chatty, range(6)) == list(range(6))
    assert sorted(r.getMessage() for r in collected) == [f"item {x}" for x in range(6)]
    assert {r.levelno for r in collected} == {logging.INFO}  # the pool's default level
    assert all(r.nbpar_worker in (0, 1) for r in collected)  # the slot that ran it
    assert sorted(line for stream, line in lines if stream == "log") == [
        f"INFO {LOGGER}: item {x}" for x in range(6)]


def test_the_pools_log_level_applies_on_the_dask_workers(client, workers, collected):
    with nbpar.WorkerPool(backend="dask", client=client, log_level=logging.DEBUG,
                          on_output=lambda *a: None) as pool:
        pool.map(chatty, range(3))
    assert sorted(r.getMessage() for r in collected if r.levelno == logging.DEBUG) == [
        f"detail {x}" for x in range(3)]
