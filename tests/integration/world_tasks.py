"""Tasks for test_caller_world.py: what a worker sees of the caller's world."""

import multiprocessing
import os
import sys


def world(_):
    return {"env": os.environ.get("NBPAR_TEST_WORLD"), "argv": list(sys.argv),
            "cwd": os.getcwd(), "path": list(sys.path)}


def argv_item(index):
    return sys.argv[index]


def authkey(_):
    return bytes(multiprocessing.current_process().authkey)


def put_in(proxy, key):
    proxy[key] = key * 2
    return len(proxy) >= 1
