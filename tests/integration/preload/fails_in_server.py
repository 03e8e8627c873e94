"""A module that cannot be imported in nbpar's fork server, only elsewhere."""

import sys

if sys.argv[0].endswith("forkserver.py"):
    raise ImportError("this module refuses the fork server")


def work(x):
    return x + 100
