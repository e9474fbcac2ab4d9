"""Where an event's time went: waiting for its handler, and in it.

channels runs every SyncConsumer handler on one thread-sensitive worker
thread, and ``AsyncConsumer.dispatch`` awaits ``aclose_old_connections()``
before each handler, which is a hop onto that same thread. So while any sync
handler runs long, every consumer's next event waits, async ones included.
``SyncThreadLedger`` remembers who held a worker thread and when, so a long
wait can be put down to the handler that caused it.
"""

import threading
from collections import deque
from dataclasses import dataclass

from explorer.trace.entry import duration


@dataclass(frozen=True, slots=True)
class Hold:
    """A handler that ran on a worker thread, from ``start`` to ``end`` (perf_counter seconds)."""

    connection: str
    event: str  # what it was handling, short and printable
    thread: str
    start: float
    end: float


class SyncThreadLedger:
    """The last few handlers that ran off the event loop, for blaming long waits."""

    def __init__(self, size=256):
        self.holds = deque(maxlen=size)
        self.lock = threading.Lock()  # appended from worker threads, read from the loop

    def record(self, hold):
        with self.lock:
            self.holds.append(hold)

    def holders(self, since, until, connection):
        """Other connections' handlers that held a worker thread between ``since`` and ``until``."""
        with self.lock:
            holds = list(self.holds)
        return [h for h in holds if h.connection != connection and h.end > since and h.start < until]


ledger = SyncThreadLedger()


def blame(holds, waited, on_event_loop, before_consumer=0.0):
    """Why an event waited ``waited`` seconds, given who held the sync thread meanwhile.

    ``before_consumer`` is the part of a connect's wait that passed before the
    consumer even started: the middleware in front of it was running.
    """
    ahead = (
        f" ({duration(before_consumer)} of it before the consumer started: middleware in front of it, "
        "such as AuthMiddlewareStack's user lookup, hops onto the sync thread too)"
        if before_consumer >= 0.01
        else ""
    )
    if not holds:
        return f"waited {duration(waited)} before its handler started{ahead}"
    names = ", ".join(
        f"{hold.connection} ({hold.event}, {duration(hold.end - hold.start)})" for hold in holds[-3:]
    )
    why = (
        "AsyncConsumer.dispatch awaits aclose_old_connections() on that thread before every handler"
        if on_event_loop
        else "SyncConsumer handlers take turns on that one thread"
    )
    return f"waited {duration(waited)} for the sync thread, held by {names}{ahead}: {why}"
