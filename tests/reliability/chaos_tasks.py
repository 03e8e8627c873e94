"""The task of the chaos run: a little work, and a planned failure where the plan says so."""

import time


def chaos_task(x, fail, sleep):
    if fail:
        raise ValueError(f"planned failure at {x}")
    time.sleep(sleep)
    return x * 7
