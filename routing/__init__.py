"""WebSocket routes: ``ws/sc/`` to the SyncConsumer, ``ws/ac/`` to the AsyncConsumer."""

from django.urls import path

from consumers.async_consumer import ExplorerAsyncConsumer
from consumers.sync_consumer import ExplorerSyncConsumer

websocket_urlpatterns = [
    path("ws/sc/", ExplorerSyncConsumer.as_asgi()),
    path("ws/ac/", ExplorerAsyncConsumer.as_asgi()),
]
