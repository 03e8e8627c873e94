"""Task functions for the drop-in suites (importable by workers under every start method)."""

import multiprocessing
import os
import time

MARK = "module"  # a test sets it in the caller: only forked workers see the new value
INITIALIZED = None


def square(x):
    return x * x


def add(a, b):
    return a + b


def echo(*args, **kwargs):
    return args, kwargs


def fail_at(x, bad=3):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


def die(_=None):
    os._exit(3)


def pid(_=None):
    return os.getpid()


def read_mark(_=None):
    return MARK


def start_method(_=None):
    return multiprocessing.current_process().name, os.getppid()


def initialize(value):
    global INITIALIZED
    INITIALIZED = value


def initialized(_=None):
    return INITIALIZED


def broken_init(*_):
    raise OSError("no database here")


def make_big(n=1000):
    return Big(n)


def identity(x):
    return x


class Big:
    """An object the tests watch with a weak reference (picklable, so it can travel)."""

    def __init__(self, n=1000):
        self.data = list(range(n))

    def method(self, x=0):
        return x


def slow_square(x, seconds=0.05):
    time.sleep(seconds)
    return x * x


def keywords(a, b=0, c=0):
    return a + 10 * b + 100 * c


def set_state(value="init"):
    global INITIALIZED
    INITIALIZED = value


def exit_value():
    return ("exit", INITIALIZED)


def exit_raises():
    raise RuntimeError("worker_exit failed")


def array_of(x):
    import numpy
    return numpy.array([x, x])
