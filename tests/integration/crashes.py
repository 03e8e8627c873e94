"""Objects and hooks that fail at a chosen moment, for the crash table (loky's model)."""

import os
import signal


def act(action):
    """Do the named harm, here and now."""
    if action == "exception":
        raise ValueError("planned failure")
    if action == "memoryerror":
        raise MemoryError("planned out-of-memory")
    if action == "exit":
        os._exit(3)
    if action == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if action == "sigkill":  # what the OOM killer sends
        os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError(action)


def _harm_on_load(action, caller_pid):
    if os.getpid() != caller_pid:
        act(action)
    return "loaded"


class HarmOnLoad:
    """Fails when unpickled in a worker (the arguments' way in)."""

    def __init__(self, action):
        self.action = action

    def __reduce__(self):
        return (_harm_on_load, (self.action, os.getpid()))


def _harm_in_caller(action, worker_pid):
    if os.getpid() != worker_pid:
        act(action)
    return "loaded"


class HarmOnDump:
    """Fails when pickled (a result's way out of the worker)."""

    def __init__(self, action):
        self.action = action

    def __reduce__(self):
        act(self.action)


class HarmInCaller:
    """Pickles fine in the worker, fails when the caller unpickles it."""

    def __init__(self, action):
        self.action = action

    def __reduce__(self):
        return (_harm_in_caller, (self.action, os.getpid()))


def identity(x):
    return x


def harm_at_3(action, x):
    if x == 3:
        act(action)
    return x


def result_harm_at_3(action, x):
    return HarmOnDump(action) if x == 3 else x


def caller_harm_at_3(action, x):
    return HarmInCaller(action) if x == 3 else x


def harm_init(action, *args):
    act(action)


def harm_exit(action, *args):
    act(action)
