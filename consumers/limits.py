"""What one connection may make the server hold, and all of them together.

The core asks here before each costly thing a client can ask for, and
answers with an ``error:`` instead when the budget is spent:

- **Holding a shared thread.** ``/sleep`` on a SyncConsumer, ``/block`` and
  ``/query`` on either, and ``?delay=`` on a SyncConsumer hold the one thread channels
  runs sync code on, or the event loop itself: while they do, no other
  connection's handler runs, and no handshake gets past the auth stack.
  Together, all connections may hold the two for at most ``HOLD_SHARE``
  seconds in all in any ``HOLD_WINDOW`` (below daphne's 5 s handshake
  timeout, so a handshake that waits still completes: it waits for both,
  one after the other), and one connection rests as long
  as it held before it may hold again: commands sent in one go are refused
  after the first, not queued into a long freeze. What ``/say`` keeps and
  ``/history`` reads hold the sync thread too (the ORM runs there): each is
  held to the same share, at what the last few took (``DatabaseCost``),
  reserved before it runs, since thousands asked for at once would all queue
  there before the first is done. ``/burst`` holds its handler's thread
  while it sends, however long that takes: it counts against the same share
  as it goes (``Holding``) and stops when it is spent.
- **Bytes a client has not read.** A burst stops when this connection has
  ``MAX_UNSENT`` bytes waiting in the server for the client, or all
  connections together ``MAX_UNSENT_TOTAL``, or when the server says it is
  not writing (uvicorn's back-pressure), since a send that then waits would
  hold the sync thread with it. Where the server does not show what it
  holds, a connection may ask for at most ``MAX_UNSENT`` bytes per
  ``HOLD_WINDOW``. An echo, ``/bytes`` and a room's message are held to the
  same bytes waiting (``reply``), not to that rate: each answers one message
  the client sent.
- **Rooms.** ``MAX_ROOMS`` per connection, ``MAX_ROOMS_TOTAL`` for all
  connections together: the in-memory layer scans every membership on each
  send and receive, so each room a connection joins slows every room.
"""

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from explorer.unsent import PAUSED, Paused  # what a probe of the server reads while it is not writing

Clock = Callable[[], float]
SYNC_THREAD = "the sync thread"
EVENT_LOOP = "the event loop"
HOLD_WINDOW = 10.0  # seconds
HOLD_SHARE = 4.0  # seconds the shared threads, both together, may be held in any HOLD_WINDOW
MAX_UNSENT = 8 * 1024 * 1024  # bytes waiting for one client
MAX_UNSENT_TOTAL = 64 * 1024 * 1024  # bytes waiting for all clients together
CHECK_EVERY = 1024 * 1024  # bytes asked for between two looks at every connection's buffers
MAX_ROOMS = 100
MAX_ROOMS_TOTAL = 5_000  # rooms joined, all connections together (a connection in two counts twice)
MIB = 1024 * 1024
# /burst holds its thread for as long as it sends: this long is not counted (a short burst), then the
# shared budget is taken a slice at a time, as it goes.
BURST_FREE = 0.2  # seconds
BURST_SLICE = 0.1  # seconds


def hold_share() -> float:
    """HOLD_SHARE, unless settings.EXPLORER_HOLD_SHARE says otherwise (the bench lifts it to measure)."""
    from django.conf import settings

    return getattr(settings, "EXPLORER_HOLD_SHARE", HOLD_SHARE)


class Holds:
    """Who held which shared thread, and when: process-wide, for every connection."""

    def __init__(self, clock: Clock = time.monotonic, share: Callable[[], float] = hold_share) -> None:
        self.clock = clock
        self.share = share
        self.spans: dict[str, deque[tuple[float, float]]] = {}  # resource -> its holds, (start, end)
        self.lock = threading.Lock()  # SyncConsumers ask from the worker thread, AsyncConsumers from the loop

    def held(self, resource: str, now: float) -> float:
        """Seconds ``resource`` is held by granted holds within the window that ends ``now``."""
        spans = self.spans.setdefault(resource, deque())
        while spans and spans[0][1] < now - HOLD_WINDOW:
            spans.popleft()
        return sum(min(end, now + HOLD_WINDOW) - max(start, now - HOLD_WINDOW) for start, end in spans)

    def grant(self, resource: str, seconds: float) -> tuple[bool, float]:
        """The hold, if the budget allows it: (granted, seconds the shared threads are already held in the
        window, all together: a handshake waits for each in turn)."""
        with self.lock:
            now = self.clock()
            held = sum(self.held(each, now) for each in {resource, *self.spans})
            if held + seconds > self.share():
                return False, held
            self.spans[resource].append((now, now + seconds))
            return True, held

    def record(self, resource: str, start: float, end: float) -> None:
        """A hold that has happened: counted from now on, though it asked for nothing beforehand."""
        with self.lock:
            self.spans.setdefault(resource, deque()).append((start, end))


HOLDS = Holds()


class DatabaseCost:
    """What one ``/say``'s store or ``/history``'s read holds the sync thread for, as the last few took:
    what each reserves of the shared budget before it runs. Kept within bounds, so that one slow
    moment (a wait for the thread counts in what an async shell sees) never shuts them out for long."""

    SMALLEST, LARGEST, INITIAL = 0.001, 0.05, 0.005  # seconds

    def __init__(self) -> None:
        self.estimate = self.INITIAL

    def took(self, seconds: float) -> None:
        self.estimate = min(self.LARGEST, max(self.SMALLEST, 0.8 * self.estimate + 0.2 * seconds))


DATABASE_COST = DatabaseCost()


class Asked:
    """Bytes every connection together has asked to send since all their buffers were last looked at:
    a look costs one call per connection, so it comes once per CHECK_EVERY bytes in the process, not at
    each connection's first message (9,000 connections, a message each: 81 million looks). Threads may
    race on the count: a look then comes a little early or late."""

    def __init__(self) -> None:
        self.count = 0

    def due(self, size: int) -> bool:
        self.count += size
        if self.count < CHECK_EVERY:
            return False
        self.count = 0
        return True


ASKED = Asked()
# The connections whose unsent bytes the server shows, for the total.
WATCHED: "weakref.WeakSet[ConnectionLimits]" = weakref.WeakSet()


class Holding:
    """A hold as long as its command takes (``/burst``), checked as it goes (``check``: None while it may
    go on, else why not) and counted when it is done (``done``).

    Refused at once when the shared budget is spent. Its first ``BURST_FREE``
    is asked for by nothing (a short burst, as most are, is not refused for a
    rest it owes) but counted at its end, so that short bursts back to back
    spend the budget too; past that, it takes the budget a ``BURST_SLICE``
    at a time, owes a rest as long as it held, and first pays any rest it
    owed from before.
    """

    def __init__(self, limits: "ConnectionLimits", resource: str | None) -> None:
        self.limits = limits
        self.resource = resource
        self.started = self.granted_to = limits.clock()
        self.owed = limits.rested_at  # the rest a hold before this one asked for
        self.looked = False

    def check(self) -> str | None:
        limits, resource = self.limits, self.resource
        if resource is None:
            return None
        now = limits.clock()
        if not self.looked:
            self.looked = True
            granted, held = limits.holds.grant(resource, 0.0)
            if not granted:
                return limits.spent(held)
        if now < self.started + BURST_FREE or now < self.granted_to:
            return None
        if now < self.owed:
            return limits.resting(resource, now)
        granted, held = limits.holds.grant(resource, BURST_SLICE)
        if not granted:
            return limits.spent(held)
        self.granted_to = now + BURST_SLICE
        limits.rested_at = self.granted_to + (self.granted_to - self.started)
        return None

    def done(self) -> None:
        """Its free stretch, counted now that it has held it."""
        if self.resource is not None:
            end = min(self.limits.clock(), self.started + BURST_FREE)
            self.limits.holds.record(self.resource, self.started, end)


class ConnectionLimits:
    """One connection's budget. ``sleeping``/``blocking``: what /sleep and /block hold (None: nothing).

    ``unsent``: a function telling how many bytes the server still holds for
    this client (``explorer.unsent``), ``PAUSED`` if it has stopped writing,
    or None where the server does not show it.
    """

    def __init__(
        self,
        sleeping: str | None = None,
        blocking: str | None = None,
        unsent: Callable[[], "int | Paused | None"] | None = None,
        holds: Holds = HOLDS,
        clock: Clock = time.monotonic,
        database_cost: DatabaseCost = DATABASE_COST,
    ) -> None:
        # A query holds the sync thread from either consumer: channels and Django run it there.
        # A burst holds the thread its handler runs on, as /block does.
        self.holding = {"sleep": sleeping, "block": blocking, "query": SYNC_THREAD, "burst": blocking}
        self.unsent = unsent or (lambda: None)
        self.holds = holds
        self.clock = clock
        self.database_cost = database_cost
        self.rested_at = float("-inf")  # when this connection may hold a shared thread again
        # (when, bytes) asked for, where the server does not show its buffers
        self.asked: deque[tuple[float, int]] = deque()
        self.since_check = CHECK_EVERY  # bytes asked for since the last rate check (the first counts)
        self.rooms = 0  # rooms this connection is in (the core keeps it)
        WATCHED.add(self)

    def hold(self, command: str, seconds: float) -> str | None:
        """None if ``command`` (sleep, block or query) may hold for ``seconds``, else why not."""
        resource = self.holding[command]
        if resource is None or seconds == 0:
            return None
        now = self.clock()
        if now < self.rested_at:
            return self.resting(resource, now)
        granted, held = self.holds.grant(resource, seconds)
        if not granted:
            return self.spent(held)
        self.rested_at = now + 2 * seconds
        return None

    def holding_as_it_goes(self, command: str) -> "Holding":
        """For a command that holds its thread until it is done, for as long as it takes (``/burst``)."""
        return Holding(self, self.holding[command])

    def resting(self, resource: str, now: float) -> str:
        return (
            f"this connection held {resource} a moment ago; it may again in "
            f"{self.rested_at - now:.1f} s (one long command at a time, then as long a rest)"
        )

    def database(self) -> str | None:
        """None if a store or a read may hold the sync thread now (no rest after it: a chat's pace), else
        why not."""
        granted, held = self.holds.grant(SYNC_THREAD, self.database_cost.estimate)
        return None if granted else self.spent(held)

    def database_took(self, seconds: float) -> None:
        self.database_cost.took(seconds)

    def spent(self, held: float) -> str:
        return (
            f"{SYNC_THREAD} and {EVENT_LOOP} have been held {held:.1f} s of the last "
            f"{HOLD_WINDOW:g} s; all connections together may hold them {self.holds.share():g} s, so "
            "that a handshake waiting for them still completes"
        )

    def send(self, size: int, paced: bool = False) -> str | None:
        """None if a message of ``size`` bytes may be sent now, else why not. ``paced``: a reply to one
        of the client's own messages, which the rate where the server does not show its buffers spares.

        Asked before every message: a look at this client's buffer is cheap,
        and a send that finds the server paused would wait (and, from a
        SyncConsumer, hold the sync thread while it waits).
        """
        unsent = self.unsent()
        if isinstance(unsent, Paused):
            return "the server has stopped writing to this client until it reads (back-pressure)"
        if unsent is None:
            if paced:
                return None
            self.since_check += size
            return self.asked_too_much() if self.checked() else None
        if unsent > MAX_UNSENT:
            return (
                f"{unsent / MIB:.1f} MiB are waiting for this client to read them "
                f"(the limit is {MAX_UNSENT // MIB} MiB)"
            )
        if ASKED.due(size):  # all connections together: a look at each, once per CHECK_EVERY asked for
            waiting = (other.unsent() for other in list(WATCHED))
            total = sum(count for count in waiting if isinstance(count, int))
            if total > MAX_UNSENT_TOTAL:
                return (
                    f"{total / MIB:.1f} MiB are waiting for clients to read them, all connections together "
                    f"(the limit is {MAX_UNSENT_TOTAL // MIB} MiB)"
                )
        return None

    def join(self) -> str | None:
        """None if this connection may join one more room, else why not."""
        if self.rooms >= MAX_ROOMS:
            return f"a connection may be in {MAX_ROOMS} rooms at most; /leave one first"
        total = sum(each.rooms for each in list(WATCHED))
        if total >= MAX_ROOMS_TOTAL:
            return (
                f"all connections together are in {total:,} rooms, the limit ({MAX_ROOMS_TOTAL:,}): each "
                "slows every room's messages; try again when some have left"
            )
        return None

    def reply(self, size: int) -> str | None:
        """``send`` for a reply to one message of the client's: the bytes waiting are limited alike,
        but where the server does not show them, no rate is (the client paces its replies)."""
        return self.send(size, paced=True)

    def writable(self) -> bool:
        """Whether the server is writing to this client: a send would not wait."""
        return self.unsent() is not PAUSED

    def checked(self) -> bool:
        """Whether CHECK_EVERY bytes have been asked for since the last time this said so."""
        if self.since_check < CHECK_EVERY:
            return False
        self.since_check = 0
        return True

    def asked_too_much(self) -> str | None:
        now = self.clock()
        while self.asked and self.asked[0][0] < now - HOLD_WINDOW:
            self.asked.popleft()
        self.asked.append((now, CHECK_EVERY))
        asked = sum(count for _, count in self.asked)
        if asked > MAX_UNSENT:
            return (
                f"this server does not show what it holds for a client, so a connection may ask for "
                f"{MAX_UNSENT // MIB} MiB per {HOLD_WINDOW:g} s"
            )
        return None
