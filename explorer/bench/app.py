"""The bench's subjects, all in one ASGI application, so one daphne process serves them side by side.

- ``raw``: an ASGI echo app in a few lines, with no channels at all.
- ``bare-ac``, ``bare-sc``: a plain AsyncConsumer and SyncConsumer echo, no explorer code.
- ``explorer-ac-MODE``, ``explorer-sc-MODE``: the explorer's own consumers with
  the trace ``off``, ``compact`` or ``full`` (the bench sends the console to a file),
  or ``capture``: compact's lines made and let go, nothing queued or rendered.

And the page's trace panel, which the bench watches as a page that has stalled.

Served only by the bench: ``python -m daphne explorer.bench.app:application``.
"""

import django

django.setup()  # daphne imports this module before anything else

from channels.consumer import AsyncConsumer, SyncConsumer  # noqa: E402
from channels.exceptions import StopConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from consumers.async_consumer import ExplorerAsyncConsumer  # noqa: E402
from consumers.sync_consumer import ExplorerSyncConsumer  # noqa: E402
from explorer.bench import CAPTURE, EXPLORER_MODES  # noqa: E402
from explorer.trace import TraceMiddleware, panel  # noqa: E402
from explorer.trace.connection import ConnectionTrace  # noqa: E402


async def raw_echo(scope, receive, send):
    """The ASGI WebSocket protocol by hand: accept, echo, stop."""
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({**event, "type": "websocket.send"})  # its text or bytes, as the server gave them
        else:
            return


class BareAsyncEcho(AsyncConsumer):
    async def websocket_connect(self, event):
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, event):
        await self.send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})

    async def websocket_disconnect(self, event):
        raise StopConsumer


class BareSyncEcho(SyncConsumer):
    def websocket_connect(self, event):
        self.send({"type": "websocket.accept"})

    def websocket_receive(self, event):
        self.send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})

    def websocket_disconnect(self, event):
        raise StopConsumer


class CapturedOnly(ConnectionTrace):
    """A connection's trace whose lines are made, every rule, note and wait in them, and let go: the
    capture's cost alone, on the consumer's path, with no queue, listener or renderer after it."""

    @staticmethod
    def deliver(values, exc_info, weight):
        pass


class CaptureOnly(TraceMiddleware):
    connection_trace = CapturedOnly


def with_trace(consumer, mode):
    if mode == CAPTURE:
        return CaptureOnly(consumer.as_asgi(), mode="compact")
    return TraceMiddleware(consumer.as_asgi(), mode=mode)


CONSUMERS = {"ac": ExplorerAsyncConsumer, "sc": ExplorerSyncConsumer}
SUBJECTS = {
    "raw": raw_echo,
    "bare-ac": BareAsyncEcho.as_asgi(),
    "bare-sc": BareSyncEcho.as_asgi(),
    **{
        f"explorer-{kind}-{mode}": with_trace(CONSUMERS[kind], mode)
        for kind in ("ac", "sc")
        for mode in EXPLORER_MODES
    },
}

application = URLRouter(
    [
        *(path(f"bench/{name}/", subject) for name, subject in SUBJECTS.items()),
        path(panel.ROUTE, panel.TracePanel()),  # the page's trace panel: the bench plays a stalled page
    ]
)
