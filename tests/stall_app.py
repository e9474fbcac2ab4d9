"""The explorer's consumers beside a raw ASGI echo, in one process: to show the cross-stall.

A raw ASGI app never touches channels' sync thread, so it keeps answering
while a SyncConsumer holds that thread; an AsyncConsumer does not, because
its dispatch waits for the thread first. ``LateQueryConsumer``, a user's
async consumer, makes an async ORM query after an ``asyncio.sleep``: the
query itself, not only the dispatch before it, waits for whoever holds the
sync thread by then. Served by daphne in ``tests/test_timing.py`` and
``tests/test_orm.py``: ``python -m daphne tests.stall_app:application``.
"""

import django

django.setup()  # daphne imports this module before anything else, and routing needs the apps ready

import asyncio  # noqa: E402

from asgiref.sync import sync_to_async  # noqa: E402
from channels.consumer import AsyncConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from explorer.bench.app import raw_echo  # noqa: E402
from explorer.models import RoomMessage  # noqa: E402
from explorer.trace import TraceMiddleware  # noqa: E402
from routing import websocket_urlpatterns  # noqa: E402


class LateQueryConsumer(AsyncConsumer):
    """Sent SECONDS, sleeps that long on the loop, then counts the stored messages with the async ORM;
    sent ``SECONDS off``, counts them in a thread of its own (``thread_sensitive=False``) instead."""

    trace_name = "late"

    async def websocket_connect(self, event):
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, event):
        seconds, _, where = event["text"].partition(" ")
        await asyncio.sleep(float(seconds))
        if where == "off":
            count = await sync_to_async(RoomMessage.objects.count, thread_sensitive=False)()
        else:
            count = await RoomMessage.objects.acount()
        await self.send({"type": "websocket.send", "text": f"{count} messages"})


application = TraceMiddleware(
    URLRouter(
        [
            *websocket_urlpatterns,
            path("ws/raw/", raw_echo),
            path("ws/late-query/", LateQueryConsumer.as_asgi()),
        ]
    )
)
