"""The explorer on a raw ``channels.consumer.SyncConsumer``, served at ``/ws/sc/``.

channels runs each handler in a worker thread (``database_sync_to_async``),
and ``self.send`` and the channel layer's calls hop back to the event loop
with ``async_to_sync``. Read beside ``async_consumer.py``: the two differ
only in that.
"""

import contextlib
import time
from collections.abc import Iterable
from typing import Any, assert_never

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.exceptions import StopConsumer

from consumers import actions
from consumers.core import ExplorerCore
from consumers.limits import SYNC_THREAD, ConnectionLimits
from consumers.process_report import process_stats, whereabouts
from explorer import database
from explorer.layers import OUTAGE_ERRORS
from explorer.models import RoomMessage
from explorer.trace import note
from explorer.trace.config import trace_config
from explorer.trace.connection import SCOPE_KEY as CONNECTION_NAME
from explorer.unsent import probe


class ExplorerSyncConsumer(SyncConsumer):
    trace_name = "sc"  # the trace calls its connections sc#N

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Groups outlive connections: a consumer that ended any other way than by its disconnect
            # handler (cancelled by the server, a handler raised) leaves its rooms here.
            core = getattr(self, "core", None)
            for room in core.abandoned() if core else ():
                with contextlib.suppress(*OUTAGE_ERRORS):
                    await self.channel_layer.group_discard(room, self.channel_name)

    def websocket_connect(self, event: dict[str, Any]) -> None:
        # What this consumer's /sleep and /block hold, and what the server holds for its client.
        limits = ConnectionLimits(sleeping=SYNC_THREAD, blocking=SYNC_THREAD, unsent=probe(self.base_send))
        # The trace's name for the connection (given with the trace off too) and its redaction rules.
        name = self.scope.get(CONNECTION_NAME, "?")
        self.core = ExplorerCore(self.scope, name=name, redaction=trace_config(), limits=limits)
        self.perform(self.core.connect())

    def websocket_receive(self, event: dict[str, Any]) -> None:
        self.perform(self.core.receive(event))

    def websocket_disconnect(self, event: dict[str, Any]) -> None:
        self.perform(self.core.disconnect(event))

    def room_message(self, event: dict[str, Any]) -> None:
        self.perform(self.core.room_message(event))

    def layer_unavailable(self, event: dict[str, Any]) -> None:
        self.perform(self.core.layer_unavailable(event))

    def layer_restored(self, event: dict[str, Any]) -> None:
        self.perform(self.core.layer_restored(event))

    def perform(self, planned: Iterable[actions.Action]) -> None:
        for action in planned:
            match action:
                case actions.Send(event):
                    self.send(event)
                case actions.Sleep(seconds):
                    time.sleep(seconds)  # a sync consumer has no other way to wait
                case actions.Block(seconds):
                    time.sleep(seconds)
                case actions.Join(group):
                    if not self.call_layer("group_add", group, self.channel_name):
                        return
                    self.perform(self.core.joined(group))
                case actions.Leave(group):
                    if not self.call_layer("group_discard", group, self.channel_name):
                        return
                    self.perform(self.core.left(group))
                case actions.Publish(group, message):
                    if not self.call_layer("group_send", group, message):
                        return
                case actions.Whoami():
                    self.perform(self.core.found(whereabouts(self)))
                case actions.Stats():
                    self.perform(self.core.found(async_to_sync(process_stats)()))
                case actions.Store() | actions.History() | actions.Query():
                    started = time.monotonic()
                    try:
                        found = self.use_database(action)
                    except database.ERRORS as error:  # the client hears why, the connection stays
                        self.perform(self.core.database_failed(action, error))
                        return
                    finally:
                        self.core.database_took(action, time.monotonic() - started)
                    self.perform(found)
                case actions.Note(text):
                    note(text)
                case actions.Fail(reason):
                    raise actions.DeliberateError(reason)
                case actions.Stop():
                    raise StopConsumer
                case _:
                    assert_never(action)

    def call_layer(self, operation: str, group: str, *args: Any) -> bool:
        """Whether the layer call went through; if not, the core's answer to the failure is performed."""
        try:
            async_to_sync(getattr(self.channel_layer, operation))(group, *args)
        except OUTAGE_ERRORS as error:  # the client hears why, the connection stays
            self.perform(self.core.layer_failed(operation, group, error))
            return False
        return True

    def use_database(self, action: actions.Store | actions.History | actions.Query) -> list[actions.Action]:
        """The ORM, called from this worker thread as it is; what the core answers, if anything."""
        match action:
            case actions.Store(room, sender, text):
                kept = RoomMessage.objects.create(room=room, sender=sender, text=text)
                RoomMessage.older_than(kept).delete()
                return []
            case actions.History(room, count):
                return self.core.history(room, [(m.sender, m.text) for m in RoomMessage.latest(room, count)])
            case actions.Query(seconds):
                database.slow_query(seconds)
                return []
            case _:
                assert_never(action)
