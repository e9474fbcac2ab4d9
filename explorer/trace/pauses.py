"""The process's own pauses: full garbage collections, which stop every thread at once.

A server holding thousands of connections holds millions of objects, and
CPython's collector walks them all in a full (generation 2) collection: the
event loop, the sync thread and the trace's listener all stand still
meanwhile, and every event waiting is late by that much. Nothing in an
event's own trace says so, so the trace counts the pauses (a callback per
collection, installed with the app) and says them as the process stops;
``manage.py bench`` reports them beside the console's lag.
"""

import gc
import os
import time

FULL = 2  # the generation of a full collection


class Pauses:
    """Full collections so far: how many, how long in all, the longest."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.total = 0.0
        self.longest = 0.0
        self.began = 0.0
        self.said = False  # as the process stops (handlers.QueuedTraceHandler.exit)

    def __call__(self, phase, info):
        if info.get("generation") != FULL:
            return
        if phase == "start":
            self.began = time.perf_counter()
        elif self.began:
            took = time.perf_counter() - self.began
            self.count += 1
            self.total += took
            self.longest = max(self.longest, took)

    def summary(self):
        """One line for the console, said even when no full collection ran: a line missing from a
        server's log then means the process did not say it (it ended without its exit hooks)."""
        return (
            f"{self.count:,} full garbage collection{'s' if self.count != 1 else ''} paused the process: "
            f"longest {self.longest * 1000:.1f} ms, {self.total * 1000:.1f} ms in all"
        )


pauses = Pauses()


def forked():
    """A forked child counts its own pauses, not its parent's so far."""
    pauses.reset()


os.register_at_fork(after_in_child=forked)


def install():
    if pauses not in gc.callbacks:
        gc.callbacks.append(pauses)
