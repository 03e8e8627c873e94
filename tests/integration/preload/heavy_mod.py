"""A module whose import is slow and leaves a trace: the pid of each process importing it."""

import os
import time

with open(os.environ["NBPAR_IMPORT_LOG"], "a") as log:
    log.write(f"{os.getpid()}\n")
time.sleep(0.5)


def work(x):
    return x * 10
