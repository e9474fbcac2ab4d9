"""The explorer on a raw ``channels.consumer.AsyncConsumer``, served at ``/ws/ac/``.

channels runs each handler on the event loop, after awaiting
``aclose_old_connections()`` (a hop to the sync thread), and ``self.send`` is
the server's own coroutine. Read beside ``sync_consumer.py``: the two differ
only in that.
"""

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any, assert_never

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from consumers import actions
from consumers.core import ExplorerCore
from consumers.limits import EVENT_LOOP, ConnectionLimits
from consumers.process_report import process_stats, whereabouts
from explorer import database
from explorer.layers import OUTAGE_ERRORS
from explorer.models import RoomMessage
from explorer.trace import note
from explorer.trace.config import trace_config
from explorer.trace.connection import SCOPE_KEY as CONNECTION_NAME
from explorer.unsent import probe


class ExplorerAsyncConsumer(AsyncConsumer):
    trace_name = "ac"  # the trace calls its connections ac#N

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

    async def websocket_connect(self, event: dict[str, Any]) -> None:
        # What this consumer's /sleep and /block hold, and what the server holds for its client.
        limits = ConnectionLimits(sleeping=None, blocking=EVENT_LOOP, unsent=probe(self.base_send))
        # The trace's name for the connection (given with the trace off too) and its redaction rules.
        name = self.scope.get(CONNECTION_NAME, "?")
        self.core = ExplorerCore(self.scope, name=name, redaction=trace_config(), limits=limits)
        await self.perform(self.core.connect())

    async def websocket_receive(self, event: dict[str, Any]) -> None:
        await self.perform(self.core.receive(event))

    async def websocket_disconnect(self, event: dict[str, Any]) -> None:
        await self.perform(self.core.disconnect(event))

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.perform(self.core.room_message(event))

    async def layer_unavailable(self, event: dict[str, Any]) -> None:
        await self.perform(self.core.layer_unavailable(event))

    async def layer_restored(self, event: dict[str, Any]) -> None:
        await self.perform(self.core.layer_restored(event))

    async def perform(self, planned: Iterable[actions.Action]) -> None:
        for action in planned:
            match action:
                case actions.Send(event):
                    await self.send(event)
                case actions.Sleep(seconds):
                    await asyncio.sleep(seconds)
                case actions.Block(seconds):
                    time.sleep(seconds)  # on purpose: the whole event loop stops
                case actions.Join(group):
                    if not await self.call_layer("group_add", group, self.channel_name):
                        return
                    await self.perform(self.core.joined(group))
                case actions.Leave(group):
                    if not await self.call_layer("group_discard", group, self.channel_name):
                        return
                    await self.perform(self.core.left(group))
                case actions.Publish(group, message):
                    if not await self.call_layer("group_send", group, message):
                        return
                case actions.Whoami():
                    await self.perform(self.core.found(whereabouts(self)))
                case actions.Stats():
                    await self.perform(self.core.found(await process_stats()))
                case actions.Store() | actions.History() | actions.Query():
                    started = time.monotonic()
                    try:
                        found = await self.use_database(action)
                    except database.ERRORS as error:  # the client hears why, the connection stays
                        await self.perform(self.core.database_failed(action, error))
                        return
                    finally:
                        self.core.database_took(action, time.monotonic() - started)
                    await self.perform(found)
                case actions.Note(text):
                    note(text)
                case actions.Fail(reason):
                    raise actions.DeliberateError(reason)
                case actions.Stop():
                    raise StopConsumer
                case _:
                    assert_never(action)

    async def call_layer(self, operation: str, group: str, *args: Any) -> bool:
        """Whether the layer call went through; if not, the core's answer to the failure is performed."""
        try:
            await getattr(self.channel_layer, operation)(group, *args)
        except OUTAGE_ERRORS as error:  # the client hears why, the connection stays
            await self.perform(self.core.layer_failed(operation, group, error))
            return False
        return True

    async def use_database(
        self, action: actions.Store | actions.History | actions.Query
    ) -> list[actions.Action]:
        """Django's async ORM, and database_sync_to_async: each query is a hop onto the sync thread."""
        match action:
            case actions.Store(room, sender, text):
                kept = await RoomMessage.objects.acreate(room=room, sender=sender, text=text)
                await RoomMessage.older_than(kept).adelete()
                return []
            case actions.History(room, count):
                found = [(m.sender, m.text) async for m in RoomMessage.latest(room, count)]
                return self.core.history(room, found)
            case actions.Query(seconds):
                await database_sync_to_async(database.slow_query)(seconds)
                return []
            case _:
                assert_never(action)
