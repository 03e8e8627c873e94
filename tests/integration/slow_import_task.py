"""A module whose import takes a while, as a heavy scientific module's does."""

import time

time.sleep(1.5)


def quick(x):
    return x + 1
