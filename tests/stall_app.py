"""The explorer's consumers beside a raw ASGI echo, in one process: to show the cross-stall.

A raw ASGI app never touches channels' sync thread, so it keeps answering
while a SyncConsumer holds that thread; an AsyncConsumer does not, because
its dispatch waits for the thread first. Served by daphne in
``tests/test_timing.py``: ``python -m daphne tests.stall_app:application``.
"""

import django

django.setup()  # daphne imports this module before anything else, and routing needs the apps ready

from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from explorer.bench.app import raw_echo  # noqa: E402
from explorer.trace import TraceMiddleware  # noqa: E402
from routing import websocket_urlpatterns  # noqa: E402

application = TraceMiddleware(URLRouter([*websocket_urlpatterns, path("ws/raw/", raw_echo)]))
