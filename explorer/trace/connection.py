"""One connection's trace: what crossed the ASGI boundary, when, on which thread, and what it broke.

``TraceMiddleware`` makes one ``ConnectionTrace`` per WebSocket connection
and wraps the server's ``receive`` and ``send`` with it; the hook in channels'
dispatch (``dispatch``) tells it which consumer serves the connection and
when each handler starts and ends, on which thread. This is the part of the
trace on a consumer's path, so it does as little as it can: timestamps, the
spec's checks (``rules``), the server's notes (``server_notes``), a shallow
copy of the event and an entry for the queue. Making it readable
happens later, on the listener thread.
"""

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import threading
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass

from explorer.trace import queries
from explorer.trace.config import TraceConfig
from explorer.trace.display import MIN_KEY_LIMIT, Shortened, printable
from explorer.trace.entry import config_number, entry_of
from explorer.trace.rules import WebSocketRules, event_type_of
from explorer.trace.server_notes import notes_for
from explorer.trace.servers import identify
from explorer.trace.timing import (
    DISPATCH_HOP,
    LATE_WINDOW,
    MIN_QUERY_HOLD,
    ORM_HOP,
    SYNC_TURNS,
    Hold,
    arrived_late,
    blame,
    blamed,
    gist,
    held_the_loop,
    ledger,
    longest,
    loop_ledger,
    on_sync_thread,
)
from explorer.trace.tracebacks import raised_at

logger = logging.getLogger("explorer.trace")

# The connection whose ASGI call this is: set by TraceMiddleware, read by the
# dispatch hook and by ``explorer.trace.note``. Tasks and asgiref's thread
# hops carry it along.
current: ContextVar["ConnectionTrace | None"] = ContextVar("explorer.trace.current", default=None)
# One sequence for every connection, so #3 and #4 tell which came first.
connection_numbers = itertools.count(1)
TRACE_STARTED = time.time()  # the process clock's zero: when this process's trace started
MAX_NAME = 40  # a path used as a name is cut to this many characters
MAX_PENDING = 20  # lines held until the scope is out; more are not kept
MAX_MESSAGE = 200  # characters of an exception's message on its error line
# The scope key through which a consumer learns its connection's name (sc#3),
# for instance to sign what it says in a room.
SCOPE_KEY = "trace_connection"
announced = set()  # the servers this process has named in its trace (a lock is not needed: a set add)
# Traced connections whose application has not ended yet: said as the process ends (``still_open``).
open_traces: "weakref.WeakSet[ConnectionTrace]" = weakref.WeakSet()
os.register_at_fork(after_in_child=open_traces.clear)  # a forked child serves none of its parent's


@dataclass(slots=True)
class Arrival:
    """An event the consumer has received but not yet handled."""

    seconds: float
    kind: str  # "in" from the server, "layer" from the channel layer
    violations: tuple = ()
    notes: tuple = ()
    channel: str | None = None  # the consumer's channel, for a layer message
    event: object = None  # the event itself, in case no handler ever takes it
    held_by: tuple = ()  # whose hold of the event loop it arrived just after


@dataclass(slots=True)
class Handling:
    """A handler that is running: what it handles, since when, on which thread."""

    event_type: str
    event: object  # its gist is kept when the hold is recorded
    started: float
    thread: str
    looping: bool
    steps: object = None  # an async handler's Steps: when it last paused, asking the sync thread
    asked: float = 0.0  # the pause whose hop the last query waited for, so it is counted once
    queries: int = 0
    query_time: float = 0.0
    longest_query: tuple[str, float] | None = None  # (statement, seconds)


def on_event_loop():
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# emit's parameters that are not an entry's details, when it holds a line back.
NOT_DETAILS = {"self", "kind", "event", "seconds", "exc_info", "label"}
RECORD_WEIGHT = 256  # bytes a record holds besides its strings: the entry, the logging record


def captured(event, limit, depth=0):
    """The event as it crossed, its long strings cut to ``limit`` now: a record holds only what it shows.

    A copy, since the consumer may change its dict after sending it. Returns
    (the copy, about how many bytes it holds), the weight the queue counts.
    """
    if depth == 0 and type(event) is dict:  # most events: a few short strings and numbers
        weight = 0
        for value in event.values():
            kind = type(value)
            if (kind is str or kind is bytes) and len(value) <= limit:
                weight += len(value)
            elif value is None or kind is int or kind is bool or kind is float:
                weight += 16
            else:
                break
        else:
            return dict(event), weight
    if isinstance(event, (str, bytes)):
        return (Shortened(event[:limit], len(event)), limit) if len(event) > limit else (event, len(event))
    if isinstance(event, dict) and depth < 2:  # an event, and a layer message inside one
        copy, weight = {}, 0
        for key, value in event.items():
            # The type stays whole, as the display keeps it (display.MIN_KEY_LIMIT).
            copy[key], held = captured(
                value, max(limit, MIN_KEY_LIMIT) if key == "type" else limit, depth + 1
            )
            weight += held
        return copy, weight
    if isinstance(event, (list, tuple)):  # headers: their pairs are shown (and redacted) later
        pairs = [pair for pair in event[:100] if isinstance(pair, (list, tuple))]
        return event, sum(len(part) for pair in pairs for part in pair if isinstance(part, (str, bytes)))
    return event, 16


def deliver(values, exc_info, weight):
    """Hands an entry's ``values`` (its fields in order, as ``ConnectionTrace.emit`` makes them) on:
    straight onto the trace's own queue when that is the only way out, else through ``logging`` as a
    ``TraceRecord``.

    The first is the usual case (the app attaches the queue; nothing else is
    configured), and it makes neither an entry nor a logging record on the
    consumer's path: the queue holds the tuple alone, where an entry, a
    record and its dict made three more objects for the garbage collector
    to visit while they wait. The listener makes them only for a sink that
    wants them. Any other configuration, and a line with a traceback, go
    through logging as it is.
    """
    handlers = logger.handlers
    if exc_info is None and len(handlers) == 1 and not logger.propagate and not logger.filters:
        handler = handlers[0]
        if (
            type(handler).__name__ == "QueuedTraceHandler"
            and not handler.filters
            and handler.level <= logging.INFO
            and not logger.disabled
        ):
            handler.enqueue(values, weight, values[1] != "scope")  # a scope may hold objects to lay out
            return
    logger.handle(TraceRecord(entry_of(values), exc_info, weight))


class TraceRecord(logging.LogRecord):
    """A trace entry as a ``logging`` record, so ``LOGGING`` routes and silences the trace.

    Made without ``LogRecord.__init__``, which looks up the caller's file,
    the thread, the process and its name: a third of a record's cost, for
    fields that are the same for every trace record. The moment is the
    entry's, and the thread the one its handler ran on. (Formatters read a
    record's ``__dict__``: every field is set on it.)
    """

    SAME = {
        "name": logger.name,
        "msg": "%s %s %s",
        "levelno": logging.INFO,
        "levelname": "INFO",
        "pathname": __file__,
        "filename": "connection.py",
        "module": "connection",
        "funcName": "emit",
        "lineno": 0,
        "exc_text": None,
        "stack_info": None,
        "thread": None,
        "taskName": None,
    }

    def __init__(self, entry, exc_info=None, weight=0):
        self.__dict__ = {
            **self.SAME,
            **this_process,
            "args": (entry.connection, entry.kind, event_type_of(entry.event) or entry.note),
            "exc_info": exc_info,
            "created": entry.at,
            "msecs": int(entry.at * 1000) % 1000,
            "relativeCreated": (entry.at - logging._startTime) * 1000,
            "threadName": entry.thread,
            "trace": entry,
            "trace_weight": weight,
        }


def logging_record(queued):
    """What the queue holds (``deliver``: a record, or an entry's values), as the logging record a sink
    takes."""
    return queued if isinstance(queued, logging.LogRecord) else TraceRecord(entry_of(queued))


this_process: dict[str, object] = {}


def note_this_process():
    """The process fields of a record, asked once per process (a server's workers fork after import)."""
    this_process.update(process=os.getpid(), processName=multiprocessing.current_process().name)


note_this_process()
os.register_at_fork(after_in_child=note_this_process)


class ConnectionTrace:
    """Traces one connection: its scope, each event in and out, its handlers, how it ended."""

    # Where each line goes once made. ``manage.py bench``'s capture-only subjects let theirs go, to
    # measure the capture alone: what no queue or renderer, however cheap, can take back.
    deliver = staticmethod(deliver)

    def __init__(self, scope, config: TraceConfig, send=None):
        self.config = config
        self.config_number = config_number(config)
        self.enabled = config.enabled and logger.isEnabledFor(logging.INFO)
        self.number = next(connection_numbers)
        path = scope.get("path") if isinstance(scope, dict) else None
        path = printable(path)[:MAX_NAME] if isinstance(path, str) and path else "websocket"
        self.name = f"{path}#{self.number}"  # until a consumer gives it its own
        self.server_scope = scope
        self.opened = time.perf_counter()
        self.opened_at = time.time()  # the same moment on the wall clock
        self.consumer = None  # the channels consumer class serving it, once one starts
        self.scope_shown = False
        self.pending: list[tuple] = []  # what was said before the scope was out
        self.consumer_seconds = 0.0  # when the application first touched the connection
        self.running = None  # the Handling under way
        self.weight = 0  # bytes the event being emitted holds (captured sets it)
        self.arrivals: dict[int, Arrival] = {}  # id(event) -> Arrival, until a handler takes it
        self.delivered: set[str | None] = set()  # the event types the server took without raising
        self.ended = None  # how the consumer ended, once it has: later lines come from a thread it left
        if self.enabled:
            self.rules = WebSocketRules(scope)
            self.server = identify(scope, send)
            self.notes = notes_for(self.server)
            open_traces.add(self)

    def seconds(self):
        return time.perf_counter() - self.opened

    def thread(self):
        """The thread to credit with what happens now: the running handler's, else this one."""
        return self.running.thread if self.running else threading.current_thread().name

    def captured(self, event):
        copy, self.weight = captured(event, self.config.max_payload)
        return copy

    def emit(
        self,
        kind,
        event,
        seconds=None,
        exc_info=None,
        label=None,
        *,
        thread=None,
        note=None,
        wait=None,
        handler=None,
        slow=False,
        violations=(),
        notes=(),
        consumer=None,
        held_by=None,
        on_loop=None,
        held_loop=None,
        outcome=None,
        server_logs_traceback=False,
        took=None,
        queries=None,
    ):
        """One line: its details are TraceEntry's fields by name, each a parameter, and the entry's values
        are made here as a tuple in the fields' order, with no dict of them and no entry (a dict spread
        into keyword parameters was a third of the consumer's path; a test holds each to its field)."""
        seconds = self.seconds() if seconds is None else seconds
        if not self.scope_shown and kind not in ("scope", "server"):
            # Said before the application took the connection (by middleware):
            # held until the scope is out, so the line has the connection's name.
            if len(self.pending) < MAX_PENDING:
                details = {name: value for name, value in locals().items() if name not in NOT_DETAILS}
                self.pending.append((kind, event, seconds, exc_info, label, details))
            return
        if self.ended and kind not in ("exit", "error"):
            notes = (f"after the consumer ended ({self.ended}): a handler still ran", *notes)
        # Plain values only, for the queue (entry.CONFIGS): a dict event's keys and values after the fields.
        number, items = self.config_number, None
        if type(event) is dict:
            items = tuple(itertools.chain.from_iterable(event.items()))
            event, number = None, -1 - number
        values = (
            self.name if label is None else label,
            kind,
            seconds,
            event,
            number,
            thread,
            note,
            wait,
            handler,
            slow,
            violations,
            notes,
            consumer,
            False,  # recorded: made here, not read back from a file
            self.opened_at + seconds,  # at
            time.time(),  # made
            TRACE_STARTED,  # started
            held_by,
            on_loop,
            held_loop,
            outcome,
            server_logs_traceback,
            took,
            queries,
        )
        if items:
            values += items
        weight, self.weight = RECORD_WEIGHT + self.weight, 0
        self.deliver(values, exc_info, weight)

    # The consumer.

    def consumer_started(self, consumer, scope):
        """A channels consumer takes the connection: it names it, by its ``trace_name``, else its class
        name. Returns the scope to give it."""
        self.consumer = type(consumer)
        name = getattr(self.consumer, "trace_name", None) or self.consumer.__name__
        self.name = f"{printable(name)[:MAX_NAME]}#{self.number}"
        if self.enabled:
            self.show_scope(scope)
        return {**scope, SCOPE_KEY: self.name}

    def show_scope(self, scope=None):
        """The scope, once: as the consumer got it (middleware adds keys), else as the server sent it."""
        if self.scope_shown:
            return
        self.scope_shown = True
        if self.server.name not in (None, "test") and self.server.label not in announced:
            announced.add(self.server.label)
            # Once per process and server: a fact about the process, on no connection's line.
            self.emit("server", None, 0.0, label="", note=f"{self.server.label}; {self.server.spec}")
        shown = {key: value for key, value in (scope or self.server_scope).items() if key != SCOPE_KEY}
        # Weighed, not cut: credentials in the query string and headers are found whole, when shown.
        _, self.weight = captured(shown, self.config.max_payload)
        consumer = self.consumer and f"{self.consumer.__module__}.{self.consumer.__qualname__}"
        self.consumer_seconds = self.seconds()
        self.emit(
            "scope",
            shown,
            seconds=0.0,  # it came with the connection
            violations=tuple(self.rules.scope_violations),
            consumer=consumer,
        )
        for kind, event, seconds, exc_info, label, details in self.pending:
            self.emit(kind, event, seconds, exc_info, label, **details)
        self.pending = []

    # The ASGI boundary.

    def wrap_receive(self, receive):
        async def traced_receive():
            event = await receive()
            arrived = self.seconds()
            notes = tuple(self.notes.incoming(event, self.rules))
            late = loop_ledger.ended_before(self.opened + arrived, LATE_WINDOW)
            held_by = ()
            if late:
                notes = (arrived_late(late, self.name), *notes)
                held_by = (longest(late).connection,)
            violations = tuple(self.rules.incoming(event))
            if self.consumer is not None:  # its dispatch traces it, when a handler takes it
                self.arrivals[id(event)] = Arrival(
                    arrived, "in", violations, notes, event=event, held_by=held_by
                )
            else:  # a plain ASGI application: it has it now
                self.show_scope()
                self.emit(
                    "in",
                    self.captured(event),
                    seconds=arrived,
                    thread=threading.current_thread().name,
                    violations=violations,
                    notes=notes,
                    held_by=held_by or None,
                )
            return event

        return traced_receive

    def wrap_send(self, send):
        async def traced_send(event):
            self.show_scope()
            # Traced before it is sent, so an event the server refuses still shows.
            seconds = self.seconds()
            notes = tuple(self.notes.outgoing(event, self.rules, seconds))
            violations = tuple(self.rules.outgoing(event))
            self.emit(
                "out",
                self.captured(event),
                seconds=seconds,
                thread=self.thread(),
                violations=violations,
                notes=notes,
            )
            await send(event)
            self.delivered.add(event_type_of(event))

        return traced_send

    # Channels' dispatch.

    def handler_started(self, event):
        """A handler is about to run for ``event``: trace the event, its wait and the thread."""
        started = self.seconds()
        thread = threading.current_thread().name
        looping = on_event_loop()
        arrival = self.arrivals.pop(id(event), None)
        event_type = event_type_of(event) or "?"
        if arrival is None:  # dispatched by hand, or from a layer the trace does not wrap
            arrival = Arrival(started, "in" if event_type.startswith("websocket.") else "layer")
        if event_type == "websocket.connect":
            arrival.seconds = 0.0  # it was there when the connection arrived
        waited = started - arrival.seconds
        notes = arrival.notes
        held_by = arrival.held_by
        slow = waited >= self.config.slow_wait
        if slow:
            holders = ledger.holders(
                self.opened + arrival.seconds,
                self.opened + started,
                self.name,
                thread=None if looping else thread,  # a SyncConsumer's: the thread it runs on
            )
            before = self.consumer_seconds if event_type == "websocket.connect" else 0.0
            why = DISPATCH_HOP if looping else SYNC_TURNS
            notes = (blame(holders, waited, why, before_consumer=before), *notes)
            held_by = tuple(dict.fromkeys([*(hold.connection for hold in blamed(holders)), *held_by]))
        shown = self.captured(event)
        if arrival.kind == "layer":
            shown = {**shown, "channel": arrival.channel}
        self.emit(
            arrival.kind,
            shown,
            seconds=arrival.seconds,
            thread=thread,
            wait=waited,
            slow=slow,
            held_by=held_by or None,
            violations=arrival.violations,
            notes=notes,
        )
        self.running = Handling(event_type, event, started, thread, looping)
        return self.running

    def handler_ended(self, handling, error=None):
        """The handler has returned or raised."""
        ended = self.seconds()
        self.running = None
        steps = handling.steps  # an async handler's: its stretches on the event loop
        note, outcome = handler_outcome(error)
        notes = ()
        held_loop = None
        if not handling.looping:
            hold = Hold(
                self.name,
                gist(handling.event),
                handling.thread,
                self.opened + handling.started,
                self.opened + ended,
                handling.longest_query,
                self.config,
            )
            ledger.record(hold)
        elif steps is not None and steps.longest >= self.config.slow_wait:
            hold = Hold(
                self.name,
                gist(handling.event),
                handling.thread,
                steps.longest_started,
                steps.longest_started + steps.longest,
                hides=self.config,
            )
            loop_ledger.record(hold)
            notes = (held_the_loop(hold),)
            held_loop = (hold.start - self.opened, hold.end - hold.start)
        self.emit(
            "done",
            {"type": handling.event_type},
            seconds=ended,
            thread=handling.thread,
            handler=ended - handling.started,
            on_loop=handling.looping,
            held_loop=held_loop,
            note=note,
            outcome=outcome,
            notes=notes,
            queries=(handling.queries, handling.query_time) if handling.queries else None,
        )

    def unhandled(self, event, problem):
        """channels found no handler for ``event``: it raises ValueError, ending the consumer."""
        arrival = self.arrivals.pop(id(event), None) or Arrival(self.seconds(), "in")
        self.emit(
            arrival.kind,
            self.captured(event),
            seconds=arrival.seconds,
            thread=threading.current_thread().name,
            violations=arrival.violations,
            notes=(*arrival.notes, problem),
        )

    # The database.

    def query_ran(self, database, sql, many, started, ended, failure=None):
        """A statement this connection's code ran (``queries``), on this thread, ``started`` to ``ended``;
        ``failure``: what to say of it if it raised (``queries.failure``).

        An async handler's statement on the sync thread ran in a hop that
        the handler asked for no later than ``Steps.asked``: if another
        connection held that thread from then until ``started``, the
        statement waited for it, and the line says so, naming it.
        """
        thread = threading.current_thread().name
        took = ended - started
        sql = queries.shortened(sql)
        shown = {
            "sql": sql,
            "database": printable(database.alias),
            "connection": queries.connection_state(database),
        }
        if many:
            shown["many"] = True
        if failure is not None:
            shown["error"] = failure
        handling = self.running
        wait, slow, held_by, notes = None, False, None, ()
        if handling is None:
            notes = ("outside any handler: middleware in front of the consumer, or a task it started",)
        else:
            handling.queries += 1
            handling.query_time += took
            if handling.longest_query is None or took > handling.longest_query[1]:
                handling.longest_query = (sql, took)
            if handling.looping and handling.steps is not None and on_sync_thread():
                # An async handler's statement, in a hop to the sync thread: whoever held that thread
                # from when the hop was asked for until the statement began is whom it waited for.
                asked = handling.steps.asked()
                if asked != handling.asked:  # the hop's first statement: later ones waited for nobody
                    handling.asked = asked
                    holders = ledger.holders(asked, started, self.name, thread=thread)
                    if holders:
                        wait = max(min(started, max(hold.end for hold in holders)) - asked, 0.0)
                        slow = wait >= self.config.slow_wait
                    if slow:
                        notes = (blame(holders, wait, ORM_HOP),)
                        held_by = tuple(dict.fromkeys(hold.connection for hold in blamed(holders)))
                if took >= MIN_QUERY_HOLD:  # it held the sync thread, as a sync handler does
                    event = gist(handling.event)
                    ledger.record(Hold(self.name, event, thread, started, ended, (sql, took), self.config))
        self.emit(
            "query",
            shown,
            seconds=ended - self.opened,
            thread=thread,
            wait=wait,
            slow=slow,
            held_by=held_by,
            took=took,
            notes=notes,
        )

    # The channel layer.

    def layer_arrived(self, message, channel):
        self.arrivals[id(message)] = Arrival(self.seconds(), "layer", channel=channel, event=message)

    def layer_call(self, operation, fields):
        """A call the consumer makes on the channel layer: group_add, group_discard, group_send, send."""
        # Cut and weighed as any event: a message may hold whatever the application put in it.
        self.emit("layer", self.captured({"type": operation, **fields}), thread=self.thread())

    def remark(self, note):
        """Something worth saying about the connection, on a line of its own."""
        self.emit("note", None, thread=self.thread(), note=note)

    # The end.

    def not_handled(self, note):
        """A line for each event received but not handled yet, with ``note``."""
        for arrival in list(self.arrivals.values()):
            self.emit(
                arrival.kind,
                self.captured(arrival.event),
                seconds=arrival.seconds,
                violations=arrival.violations,
                note=note,
            )

    def process_ending(self):
        """The process is ending with this connection open: its application has not returned
        (``still_open``). A thread still running (a sync handler's) may yet trace more: those lines are
        true too, so the events not handled yet are kept, and their wait is still right if one is."""
        self.show_scope()
        self.not_handled("received, not handled yet as the process ends")
        self.emit(
            "note",
            None,
            note="the process is ending with this connection open: its application has not returned (the "
            "server did not end it, or it has not ended yet; a handler still running may add lines after "
            "this one)",
        )

    def exited(self, error=None):
        """The application has returned, raised or been cancelled."""
        open_traces.discard(self)
        self.show_scope()
        self.not_handled("received but never handled: the consumer had stopped")
        self.arrivals.clear()
        who = "consumer" if self.consumer else "application"
        tally = self.rules.tally()
        closing = "websocket.close" in self.delivered or self.rules.disconnected or self.rules.denied
        raised = error is not None and not isinstance(error, asyncio.CancelledError)
        outcome = self.notes.ending(
            raised, "websocket.accept" in self.delivered, closing, attempted=self.rules.accepted
        )
        outcome = f"; {outcome}" if outcome else ""
        notes = ()
        if self.running and not self.running.looping:
            # Python cannot stop a thread: the sync handler runs on, and whatever it does next
            # is traced after this line, marked as such.
            notes = (
                f"its sync handler for {self.running.event_type} still runs on {self.running.thread}, "
                "past the consumer's end",
            )
        if error is None:
            self.emit("exit", None, note=f"{who} returned{outcome}; {tally}", notes=notes)
            self.ended = "returned"
        elif not raised:
            self.emit("exit", None, note=f"{who} cancelled; {tally}", notes=notes)
            self.ended = "cancelled"
        else:
            exc_info = (type(error), error, error.__traceback__)
            logged = self.notes.logs_traceback()
            where = raised_at(exc_info)
            message = printable(str(error))[:MAX_MESSAGE]
            self.emit(
                "error",
                None,
                thread=self.thread(),
                note=f"{who} raised {type(error).__name__}{f' at {where}' if where else ''}"
                f"{f': {message}' if message else ''}{outcome}; {tally}",
                notes=(*notes, logged) if logged else notes,
                server_logs_traceback=bool(logged),
                exc_info=exc_info,
            )
            self.ended = f"raised {type(error).__name__}"


def still_open():
    """As the process ends, before the trace's queue closes: a line for each traced connection whose
    application never ended. A server that ends its process with connections open (granian's workers)
    never tells their applications, and their traces would otherwise stop mid-story."""
    for trace in list(open_traces):
        open_traces.discard(trace)
        with contextlib.suppress(Exception):  # the process is ending: the others are still said
            trace.process_ending()


def handler_outcome(error):
    """How a handler ended, when it did not simply return: its done line's note, and ``raised`` or
    ``cancelled`` (StopConsumer is an ending, not a failure)."""
    if error is None:
        return None, None
    if type(error).__name__ == "StopConsumer":
        return "StopConsumer: the consumer ends", None
    if isinstance(error, asyncio.CancelledError):
        return "cancelled", "cancelled"
    return f"raised {type(error).__name__}", "raised"
