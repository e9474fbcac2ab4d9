"""One connection's trace: what crossed the ASGI boundary, when, and on which thread.

This is the only part of the trace that runs on a consumer's path, so it does
as little as it can: a timestamp, a shallow copy of the event and a
``logging`` record handed to the queue. Making it readable happens later, on
the listener thread.
"""

import asyncio
import itertools
import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from explorer.trace.config import TraceConfig, trace_config

logger = logging.getLogger("explorer.trace")

# One sequence for both endpoints, so sc#3 and ac#4 tell which came first.
connection_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """What one trace line says. ``kind`` is scope, in, out, error or exit."""

    connection: str
    kind: str
    seconds: float  # since the connection opened
    event: dict | None
    config: TraceConfig
    thread: str | None = None
    note: str | None = None


class ConnectionTrace:
    """Traces one connection: its scope, each event in and out, how its consumer ended."""

    def __init__(self, endpoint, scope, config=None):
        self.config = config or trace_config()
        self.enabled = self.config.enabled and logger.isEnabledFor(logging.INFO)
        self.endpoint = endpoint
        self.connection = f"{endpoint}#{next(connection_numbers)}"
        self.opened = time.perf_counter()
        self.accepted = False
        self.handler_thread = None
        self.arrivals = {}  # id(event) -> when receive() returned it
        if self.enabled:
            self.emit("scope", dict(scope))

    def seconds(self):
        return time.perf_counter() - self.opened

    def emit(self, kind, event, seconds=None, thread=None, note=None, exc_info=None):
        entry = TraceEntry(
            connection=self.connection,
            kind=kind,
            seconds=self.seconds() if seconds is None else seconds,
            event=event,
            config=self.config,
            thread=thread,
            note=note,
        )
        event_type = event.get("type") if isinstance(event, dict) else None
        logger.info(
            "%s %s %s", self.connection, kind, event_type or note, extra={"trace": entry}, exc_info=exc_info
        )

    def wrap_receive(self, receive):
        async def traced_receive():
            event = await receive()
            self.arrivals[id(event)] = self.seconds()
            return event

        return traced_receive

    def wrap_send(self, send):
        async def traced_send(event):
            # Traced before it is sent, so an event the server refuses still shows.
            if isinstance(event, dict) and event.get("type") == "websocket.accept":
                self.accepted = True
            self.emit("out", dict(event), thread=self.handler_thread)
            await send(event)

        return traced_send

    def handling(self, event):
        """Context for a handler: traces the event with the thread that runs it."""
        if not self.enabled:
            return nullcontext()
        return self._handling(event)

    @contextmanager
    def _handling(self, event):
        started = self.seconds()
        self.handler_thread = threading.current_thread().name
        self.emit(
            "in", dict(event), seconds=self.arrivals.pop(id(event), started), thread=self.handler_thread
        )
        yield

    def exited(self, error=None):
        """The consumer has returned, raised or been cancelled."""
        if error is None:
            self.emit("exit", None, note="consumer returned")
        elif isinstance(error, asyncio.CancelledError):
            self.emit("exit", None, note="consumer cancelled")
        else:
            if self.accepted:
                outcome = "the server closes the connection with 1011"
            else:
                outcome = "the handshake was not accepted: the server answers HTTP 500"
            self.emit(
                "error",
                None,
                thread=self.handler_thread,
                note=f"consumer raised {type(error).__name__}; {outcome}",
                exc_info=(type(error), error, error.__traceback__),
            )
