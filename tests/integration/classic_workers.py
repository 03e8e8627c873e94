"""Worker classes for the classic Boss tests (importable by workers under every start method)."""

import os
import time

import nbpar


class Doubler(nbpar.Worker):
    """Doubles a number after an optional nap; records when it started in a stamp file."""

    instructions = ("number",)
    defaults = {"nap": 0.0, "stamps": None}

    def task(self, number, nap, stamps):
        if stamps is not None:
            with open(stamps, "a") as f:
                f.write(f"{number} {time.time()!r}\n")
        time.sleep(nap)
        return number * 2


class Greeter(nbpar.Worker):
    instructions = ("who", "greeting")

    def task(self, who, greeting):
        return f"{greeting}, {who} (from {self.name} in pid {os.getpid()})"


class Failing(nbpar.Worker):
    instructions = ("fail_at", "position")
    defaults = {"nap": 0.0}

    def task(self, fail_at, position, nap):
        time.sleep(nap)
        if position == fail_at:
            raise KeyError(f"position {position} is bad")
        return position


class Sleeper(nbpar.Worker):
    instructions = ("sleep_for",)

    def task(self, sleep_for):
        time.sleep(sleep_for)
        return sleep_for


class Shell(nbpar.Worker):
    """Runs a command through run_job (here: run_locally)."""

    instructions = ("command",)

    def task(self, command):
        return nbpar.run_job(command, run_locally=True)[0]


def read_stamps(path):
    try:
        with open(path) as f:
            return [(int(a), float(b)) for a, b in (line.split() for line in f)]
    except FileNotFoundError:
        return []
