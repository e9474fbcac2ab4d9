"""The explorer's consumers beside a raw ASGI echo, in one process: to show the cross-stall.

A raw ASGI app never touches channels' sync thread, so it keeps answering
while a SyncConsumer holds that thread; an AsyncConsumer does not, because
its dispatch waits for the thread first. Served by daphne in
``tests/test_timing.py``: ``python -m daphne tests.stall_app:application``.
"""

from channels.routing import URLRouter
from django.urls import path

from explorer.bench.app import raw_echo  # sets Django up, as daphne needs
from explorer.trace import TraceMiddleware
from routing import websocket_urlpatterns

application = TraceMiddleware(URLRouter([*websocket_urlpatterns, path("ws/raw/", raw_echo)]))
