"""The explorer on a raw ``channels.consumer.AsyncConsumer``, served at ``/ws/ac/``.

channels runs each handler on the event loop, after awaiting
``aclose_old_connections()`` (a hop to the sync thread), and ``self.send`` is
the server's own coroutine. Read beside ``sync_consumer.py``: the two differ
only in that.
"""

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from consumers.core import ExplorerCore, Send, Stop
from explorer.trace.consumer import TracedConsumer


class ExplorerAsyncConsumer(TracedConsumer, AsyncConsumer):
    endpoint = "ac"

    async def websocket_connect(self, event):
        with self.trace.handling(event):
            self.core = ExplorerCore(self.scope)
            await self.perform(self.core.connect())

    async def websocket_receive(self, event):
        with self.trace.handling(event):
            await self.perform(self.core.receive(event))

    async def websocket_disconnect(self, event):
        with self.trace.handling(event):
            await self.perform(self.core.disconnect(event))

    async def perform(self, actions):
        for action in actions:
            match action:
                case Send(event):
                    await self.send(event)
                case Stop():
                    raise StopConsumer
