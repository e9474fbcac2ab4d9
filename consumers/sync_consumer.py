"""The explorer on a raw ``channels.consumer.SyncConsumer``, served at ``/ws/sc/``.

channels runs each handler in a worker thread (``database_sync_to_async``),
and ``self.send`` hops back to the event loop with ``async_to_sync``. Read
beside ``async_consumer.py``: the two differ only in that.
"""

import time

from channels.consumer import SyncConsumer
from channels.exceptions import StopConsumer

from consumers.core import Block, ExplorerCore, Send, Sleep, Stop, Whoami
from consumers.whereabouts import whereabouts
from explorer.trace.consumer import TracedConsumer


class ExplorerSyncConsumer(TracedConsumer, SyncConsumer):
    endpoint = "sc"

    def websocket_connect(self, event):
        with self.trace.handling(event):
            self.core = ExplorerCore(self.scope, self.trace.config.show_credentials)
            self.perform(self.core.connect())

    def websocket_receive(self, event):
        with self.trace.handling(event):
            self.perform(self.core.receive(event))

    def websocket_disconnect(self, event):
        with self.trace.handling(event):
            self.perform(self.core.disconnect(event))

    def perform(self, actions):
        for action in actions:
            match action:
                case Send(event):
                    self.send(event)
                case Sleep(seconds):
                    time.sleep(seconds)  # a sync consumer has no other way to wait
                case Block(seconds):
                    time.sleep(seconds)
                case Whoami():
                    self.perform([self.core.whoami(whereabouts(self))])
                case Stop():
                    raise StopConsumer
