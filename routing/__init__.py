"""WebSocket routes: ``ws/sc/`` to the SyncConsumer, ``ws/ac/`` to the AsyncConsumer, ``ws/trace/`` to the
page's trace panel (inside the origin check, as these routes are: it shows every connection's traffic).
``UNROUTED``, any other path to a refusal (``consumers.unrouted``), comes after them in ``asgi.py``, and
after whatever routes an application adds to these."""

from django.urls import path, re_path

from consumers.async_consumer import ExplorerAsyncConsumer
from consumers.sync_consumer import ExplorerSyncConsumer
from consumers.unrouted import Unrouted
from explorer.trace import panel

websocket_urlpatterns = [
    path("ws/sc/", ExplorerSyncConsumer.as_asgi()),
    path("ws/ac/", ExplorerAsyncConsumer.as_asgi()),
    path(panel.ROUTE, panel.TracePanel()),
]
UNROUTED = re_path(r"", Unrouted.as_asgi())  # any path: last
