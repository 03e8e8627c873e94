"""Task functions the integration tests send to workers (importable under every start method)."""

import ctypes
import os
import signal
import time


def square(x):
    return x * x


def add(a, b):
    return a + b


def pid_of(_):
    return os.getpid()


def raise_at(x, bad=7):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def exit_at(x):
    if x == 5:
        os._exit(3)
    return x


def segfault_at(x):
    if x == 5:
        os.kill(os.getpid(), signal.SIGSEGV)
    return x


def sigkill_at(x):
    if x == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def sleep_at(x):
    if x == 3:
        time.sleep(60)
    return x


def nap(x, seconds=0.05):
    time.sleep(seconds)
    return x


def busy(x, seconds=0.02):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return x


def stamp(path, x, seconds=0.05):
    """Record (start, end) of the task, one line per task, appended atomically."""
    start = time.time()
    time.sleep(seconds)
    end = time.time()
    with open(path, "a") as f:
        f.write(f"{x} {start} {end} {os.getpid()}\n")
    return x


def read_stamps(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            x, start, end, pid = line.split()
            rows.append((int(x), float(start), float(end), int(pid)))
    return rows


def talk(x):
    print(f"print {x}")
    import sys
    print(f"stderr {x}", file=sys.stderr)
    os.write(1, f"fd1 {x}\n".encode())
    libc = ctypes.CDLL(None)
    libc.puts(f"libc {x}".encode())
    libc.fflush(None)
    return x


class Unpicklable:
    def __reduce__(self):
        raise TypeError("this object refuses to be pickled")


def return_unpicklable(x):
    if x == 4:
        return Unpicklable()
    return x


class LockedError(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.lock = __import__("threading").Lock()


def raise_unpicklable(x):
    if x == 2:
        raise LockedError("holds a lock")
    return x


def shared_id(shared, x):
    return id(shared)


def shared_value(shared, x):
    return shared["value"] + x


def fill_array(shared, x):
    arr, total, lock = shared
    arr[x] = x * 10
    with lock:
        total.value += x
    return x


def fill_raw(shared, x):
    shared[x] = x + 1
    return x


def array_in_shm(shared, x):
    """Is the shared array's memory a /dev/shm mapping in this worker?"""
    arr = shared["arr"]
    addr = arr.ctypes.data
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if lo <= addr < hi:
                return (parts[5] if len(parts) > 5 else "", float(arr.sum()))
    return ("", float(arr.sum()))


def with_id_and_state(worker_id, state, x):
    state["n"] = state.get("n", 0) + 1
    return (worker_id, state["n"])


def init_state(worker_id, state):
    state["init"] = worker_id


def exit_state(worker_id, state):
    return (worker_id, state.get("n", 0))


def failing_init(*args):
    raise RuntimeError("init went wrong")


def failing_exit(*args):
    raise RuntimeError("exit went wrong")
