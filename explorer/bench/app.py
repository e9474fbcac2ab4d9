"""The bench's subjects, all in one ASGI application, so one daphne process serves them side by side.

- ``raw``: an ASGI echo app in a few lines, with no channels at all.
- ``bare-ac``, ``bare-sc``: a plain AsyncConsumer and SyncConsumer echo, no explorer code.
- ``explorer-ac-MODE``, ``explorer-sc-MODE``: the explorer's own consumers with
  the trace ``off``, ``compact`` or ``full`` (the bench sends the console to a file).

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
from explorer.bench import TRACE_MODES  # noqa: E402
from explorer.trace import TraceMiddleware, panel  # noqa: E402


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


def with_trace(consumer, mode):
    return TraceMiddleware(consumer.as_asgi(), mode=mode)


SUBJECTS = {
    "raw": raw_echo,
    "bare-ac": BareAsyncEcho.as_asgi(),
    "bare-sc": BareSyncEcho.as_asgi(),
    **{f"explorer-ac-{mode}": with_trace(ExplorerAsyncConsumer, mode) for mode in TRACE_MODES},
    **{f"explorer-sc-{mode}": with_trace(ExplorerSyncConsumer, mode) for mode in TRACE_MODES},
}

application = URLRouter(
    [
        *(path(f"bench/{name}/", subject) for name, subject in SUBJECTS.items()),
        path(panel.ROUTE, panel.TracePanel()),  # the page's trace panel: the bench plays a stalled page
    ]
)
