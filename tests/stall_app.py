"""The explorer's consumers beside a raw ASGI echo, in one process: to show the cross-stall.

A raw ASGI app never touches channels' sync thread, so it keeps answering
while a SyncConsumer holds that thread; an AsyncConsumer does not, because
its dispatch waits for the thread first. Served by daphne in
``tests/test_timing.py``: ``python -m daphne tests.stall_app:application``.
"""

import django

django.setup()  # daphne imports this module before anything else

from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from routing import websocket_urlpatterns  # noqa: E402


async def raw_echo(scope, receive, send):
    """The whole ASGI WebSocket protocol in a few lines: accept, echo, stop."""
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})
        else:
            return


application = URLRouter([*websocket_urlpatterns, path("ws/raw/", raw_echo)])
