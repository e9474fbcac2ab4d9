"""Where an event's time went: waiting for its handler, and in it, and what held the threads meanwhile.

channels runs every SyncConsumer handler on one thread-sensitive worker
thread, and ``AsyncConsumer.dispatch`` awaits ``aclose_old_connections()``
before each handler, which is a hop onto that same thread. So while any sync
handler runs long, every consumer's next event waits, async ones included.
``SyncThreadLedger`` remembers who held a worker thread and when, so a long
wait can be put down to the handler that caused it.
"""

import threading
import time
from collections import deque
from dataclasses import dataclass

from asgiref.sync import SyncToAsync

from explorer import redaction
from explorer.trace.display import printable
from explorer.trace.entry import duration


@dataclass(slots=True)
class Hold:
    """A handler that ran on a worker thread, from ``start`` to ``end`` (perf_counter seconds)."""

    connection: str
    handled: tuple  # gist() of the event it handled: said only if someone is told to blame it
    thread: str
    start: float
    end: float
    query: tuple[str, float] | None = None  # its longest SQL statement and that one's time, if any
    # The holder's trace config: the credentials its text hides when a note names it, as its own lines do.
    hides: redaction.Rules | None = None

    @property
    def event(self):
        """What it was handling, short, printable and with its credentials hidden:
        ``websocket.receive '/sleep 2'``."""
        event_type, text = self.handled
        event_type = printable(str(event_type))
        if text is None:
            return event_type
        if self.hides is not None and not self.hides.show_credentials:
            text = redaction.text(text, self.hides)
        return f"{event_type} {text[:SHOWN]!r}" + ("…" if len(text) > SHOWN else "")


SHOWN = 40  # characters of a handler's text that a note quotes
KEPT = 256  # characters of it a Hold keeps: enough around the quoted start to find a credential's field


def gist(event):
    """An event's type and the start of its text: all a Hold keeps of it, made at every handler's end. Its
    credentials are hidden only if a note ever names it (``Hold.event``)."""
    if not isinstance(event, dict):
        return "?", None
    text = event.get("text")
    return event.get("type", "?"), text[:KEPT] if isinstance(text, str) else None


class HoldLedger:
    """The last few handlers that held a shared thread (the sync thread, or the event loop), for blame."""

    def __init__(self):
        self.holds = deque(maxlen=256)
        self.lock = threading.Lock()  # appended from worker threads, read from the loop

    def record(self, hold):
        with self.lock:
            self.holds.append(hold)

    def holders(self, since, until, connection, thread=None):
        """Other connections' handlers that held a worker thread (``thread``, if given) between ``since``
        and ``until``."""
        with self.lock:
            holds = list(self.holds)
        return [
            h
            for h in holds
            if h.connection != connection
            and h.end > since
            and h.start < until
            and (thread is None or h.thread == thread)
        ]

    def ended_before(self, moment, within):
        """Holds that ended no more than ``within`` seconds before ``moment``: what it may have waited for."""
        if not self.holds:  # nearly always, for the loop's ledger: asked at every arrival, so no lock
            return []
        with self.lock:
            if not self.holds or moment - self.holds[-1].end > within:
                return []
            holds = list(self.holds)
        return [h for h in holds if 0 <= moment - h.end <= within]


ledger = HoldLedger()  # handlers on the sync thread (SyncConsumer handlers)
loop_ledger = HoldLedger()  # stretches of async handlers that held the event loop without yielding
LATE_WINDOW = 0.05  # seconds after a loop hold ends in which an arrival is put down to it


class Steps:
    """A coroutine driven one step at a time, each step timed: how long it held the event loop at once.

    Between two awaits a coroutine has the loop to itself: a step that takes
    long is blocking code in an async handler (``time.sleep``, a sync
    client), and nothing else on the loop runs meanwhile, as asyncio's debug
    mode reports with ``slow_callback_duration``.
    """

    __slots__ = ("coroutine", "longest", "longest_started", "paused", "resumed")

    def __init__(self, coroutine):
        self.coroutine = coroutine
        self.longest = 0.0
        self.longest_started = 0.0
        self.resumed = 0.0  # when the step under way (or the last) began
        self.paused = 0.0  # when the last step ended

    def asked(self):
        """When a hop to another thread that starts now was asked for, at the latest: its step ended
        (it yields to await the hop), or, when the other thread was quicker, is still under way."""
        return max(self.resumed, self.paused)

    def __await__(self):
        inner = self.coroutine.__await__()
        value, error = None, None
        while True:
            started = self.resumed = time.perf_counter()
            try:
                yielded = inner.send(value) if error is None else inner.throw(error)
            except StopIteration as done:
                return done.value
            finally:
                self.paused = time.perf_counter()
                took = self.paused - started
                if took > self.longest:
                    self.longest, self.longest_started = took, started
            try:
                value, error = (yield yielded), None
            except BaseException as thrown:  # cancellation, and whatever the loop throws in
                value, error = None, thrown


def held_the_loop(hold):
    """The note at a handler that held the event loop, and what it did to everyone else."""
    return (
        f"held the event loop's thread for {duration(hold.end - hold.start)} without letting go: blocking "
        "code in an async handler (time.sleep, a sync call). Every connection on this loop waited, and the "
        "server could read nothing meanwhile"
    )


def longest(holds):
    """The hold an arrival just after the event loop was held is put down to."""
    return max(holds, key=lambda h: h.end - h.start)


def blamed(holds):
    """The holds a wait is put down to, by name: the last few."""
    return holds[-3:]


def arrived_late(holds, connection):
    """Why an event that arrived just after the event loop was held may have waited before it arrived."""
    hold = longest(holds)
    who = "its own handler" if hold.connection == connection else f"{hold.connection}'s handler"
    return (
        f"arrived as {who} ({hold.event}) let go of the event loop, which it had held for "
        f"{duration(hold.end - hold.start)}: it may have waited that long before the server could read it"
    )


def holder(hold):
    """Who held the thread, and with what: its query, when most of the hold was one."""
    if hold.query and hold.query[1] >= (hold.end - hold.start) / 2:
        sql, took = hold.query
        return f"{hold.connection}'s query {sql} ({duration(took)}, in {hold.event})"
    return f"{hold.connection} ({hold.event}, {duration(hold.end - hold.start)})"


SYNC_TURNS = "SyncConsumer handlers take turns on that one thread"
DISPATCH_HOP = "AsyncConsumer.dispatch awaits aclose_old_connections() on that thread before every handler"
ORM_HOP = "Django's async ORM and database_sync_to_async run every query on that one thread"
MIN_QUERY_HOLD = 0.001  # seconds: an async handler's shorter statement is not kept for blame


def on_sync_thread():
    """Whether this is the thread thread-sensitive ``sync_to_async`` runs on (asgiref's one worker,
    which channels and Django's async ORM use); True where asgiref does not say, and the ledger then
    blames only holds of this same thread."""
    threads = getattr(getattr(SyncToAsync, "single_thread_executor", None), "_threads", None)
    return threads is None or threading.current_thread() in threads


def blame(holds, waited, why, before_consumer=0.0):
    """Why something waited ``waited`` seconds for the sync thread (``why``), given who held it meanwhile.

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
    names = ", ".join(holder(hold) for hold in blamed(holds))
    return f"waited {duration(waited)} for the sync thread, held by {names}{ahead}: {why}"
