"""One connection's trace: what crossed the ASGI boundary, when, on which thread, and what it broke.

This is the only part of the trace that runs on a consumer's path, so it does
as little as it can: timestamps, the spec's checks (``rules``), daphne's notes
(``server_notes``), a shallow copy of the event and a ``logging`` record handed
to the queue. Making it readable happens later, on the listener thread.
"""

import asyncio
import itertools
import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from explorer.trace import server_notes
from explorer.trace.config import TraceConfig, trace_config
from explorer.trace.rules import INCOMING_TYPES, WebSocketRules, event_type_of
from explorer.trace.timing import Hold, blame, ledger

logger = logging.getLogger("explorer.trace")

NOT_TRACED = nullcontext()  # reusable: entering it does nothing
# One sequence for both endpoints, so sc#3 and ac#4 tell which came first.
connection_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """What one trace line says. ``kind`` is scope, in, out, layer, done, note, error or exit."""

    connection: str
    kind: str
    seconds: float  # since the connection opened
    event: dict | None
    config: TraceConfig
    thread: str | None = None
    note: str | None = None
    wait: float | None = None  # in: from arrival at the consumer to its handler's start
    handler: float | None = None  # done: the handler's own time
    slow: bool = False  # the wait reached config.slow_wait
    violations: tuple = ()  # rules.Violation, each rule this event broke
    notes: tuple = ()  # what the server does differently, or why the event waited
    recorded: bool = False  # read back from a file: the event is already as shown

    @property
    def endpoint(self):
        return self.connection.partition("#")[0]


def on_event_loop():
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def summary(event):
    """A handler's event in a few printable words, for blaming a wait on it."""
    event_type = event.get("type", "?")
    text = event.get("text")
    if isinstance(text, str):
        return f"{event_type} {text[:40]!r}" + ("…" if len(text) > 40 else "")
    return str(event_type)


class ConnectionTrace:
    """Traces one connection: its scope, each event in and out, how its consumer ended."""

    def __init__(self, endpoint, scope, config=None, channel_name=lambda: None):
        self.config = config or trace_config()
        self.enabled = self.config.enabled and logger.isEnabledFor(logging.INFO)
        self.endpoint = endpoint
        self.connection = f"{endpoint}#{next(connection_numbers)}"
        self.opened = time.perf_counter()
        self.handler_thread = None
        self.channel_name = channel_name  # channels names the consumer's channel once it runs
        self.arrivals = {}  # id(event) -> (seconds since open, violations, notes)
        self.delivered = {}  # event type -> True once the server took one without raising
        if self.enabled:
            self.rules = WebSocketRules(scope)
            self.emit("scope", dict(scope), violations=tuple(self.rules.scope_violations))

    @property
    def accepted(self):
        return self.enabled and self.rules.accepted

    def seconds(self):
        return time.perf_counter() - self.opened

    def emit(self, kind, event, seconds=None, exc_info=None, **details):
        entry = TraceEntry(
            connection=self.connection,
            kind=kind,
            seconds=self.seconds() if seconds is None else seconds,
            event=event,
            config=self.config,
            **details,
        )
        event_type = event_type_of(event)
        # makeRecord and handle, rather than logger.info: the caller's file and
        # line are always this method, and finding them costs a fifth of a record.
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s",
            (self.connection, kind, event_type or details.get("note")),
            exc_info,
            extra={"trace": entry},
        )
        logger.handle(record)

    def wrap_receive(self, receive):
        async def traced_receive():
            event = await receive()
            arrived = self.seconds()
            notes = tuple(server_notes.incoming(event, self.rules))
            violations = tuple(self.rules.incoming(event))
            if event_type_of(event) in INCOMING_TYPES:
                self.arrivals[id(event)] = (arrived, violations, notes)
            else:  # no handler will run for it: trace it now
                self.emit("in", shallow_copy(event), seconds=arrived, violations=violations, notes=notes)
            return event

        return traced_receive

    def wrap_send(self, send):
        async def traced_send(event):
            # Traced before it is sent, so an event the server refuses still shows.
            seconds = self.seconds()
            notes = tuple(server_notes.outgoing(event, self.rules, seconds))
            violations = tuple(self.rules.outgoing(event))
            self.emit(
                "out",
                shallow_copy(event),
                seconds=seconds,
                thread=self.handler_thread,
                violations=violations,
                notes=notes,
            )
            await send(event)
            self.delivered[event_type_of(event)] = True

        return traced_send

    def handling(self, event):
        """Context for a handler: traces the event, how long it waited, the thread and the handler's time."""
        if not self.enabled:
            return NOT_TRACED
        return self._handling(event)

    @contextmanager
    def _handling(self, event):
        started = self.seconds()
        thread = self.handler_thread = threading.current_thread().name
        looping = on_event_loop()
        if id(event) in self.arrivals:
            kind = "in"
            arrived, violations, notes = self.arrivals.pop(id(event))
            waited = started - arrived
        else:
            # From the channel layer, whose receive the trace does not wrap:
            # when it arrived is unknown, so is its wait.
            kind, arrived, violations, notes, waited = "layer", started, (), (), None
            event = {**event, "channel": self.channel_name()}
        slow = waited is not None and waited >= self.config.slow_wait
        if slow:
            holders = ledger.holders(self.opened + arrived, self.opened + started, self.connection)
            notes = (blame(holders, waited, looping), *notes)
        self.emit(
            kind,
            shallow_copy(event),
            seconds=arrived,
            thread=thread,
            wait=waited,
            slow=slow,
            violations=violations,
            notes=notes,
        )
        try:
            yield
        finally:
            ended = self.seconds()
            if not looping:
                hold = Hold(
                    self.connection, summary(event), thread, self.opened + started, self.opened + ended
                )
                ledger.record(hold)
            self.emit(
                "done", {"type": event.get("type")}, seconds=ended, thread=thread, handler=ended - started
            )

    def layer(self, operation, group, channel=None, message=None):
        """A call the consumer makes on the channel layer: group_add, group_discard, group_send."""
        if not self.enabled:
            return
        event = {"type": operation, "group": group}
        if channel is not None:
            event["channel"] = channel
        if message is not None:
            event["message"] = dict(message)
        self.emit("layer", event, thread=threading.current_thread().name)

    def remark(self, note):
        """Something the consumer wants said in the trace, on a line of its own."""
        if self.enabled:
            self.emit("note", None, thread=threading.current_thread().name, note=note)

    def exited(self, error=None):
        """The consumer has returned, raised or been cancelled."""
        broken = self.rules.count
        tally = (
            f"{broken} ASGI rule violation{'s' if broken != 1 else ''}" if broken else "no ASGI rule broken"
        )
        if error is None:
            self.emit("exit", None, note=f"consumer returned; {tally}")
        elif isinstance(error, asyncio.CancelledError):
            self.emit("exit", None, note=f"consumer cancelled; {tally}")
        else:
            closing = self.delivered.get("websocket.close") or self.rules.disconnected
            outcome = server_notes.exception_outcome(self.delivered.get("websocket.accept"), closing)
            self.emit(
                "error",
                None,
                thread=self.handler_thread,
                note=f"consumer raised {type(error).__name__}; {outcome}; {tally}",
                exc_info=(type(error), error, error.__traceback__),
            )


def shallow_copy(event):
    # The consumer may change its dict after sending it; the trace shows it as it crossed.
    return dict(event) if isinstance(event, dict) else event
