"""The channel layers the explorer configures: channels' in-memory layer, made to stay cheap with
thousands of connections, and the Redis channel layer, made to ride out a Redis outage.

The in-memory layer: channels' ``InMemoryChannelLayer.receive`` walks every channel's queue and
every group for expired messages before it waits, and every consumer starts
a receive as it starts and after each message from the layer. So each of N
connections opening walked the queues of all the others: N² in all, and at a
few thousand connections milliseconds on the event loop for each handshake
(``manage.py bench``'s scale scenario managed 129 handshakes a second at
9,000). Expiry is measured in seconds (60 for a message, a day for a
group), so this layer walks at most once a second.

The Redis layer: with channels_redis as it comes, a consumer's layer receive
raises when Redis goes away, and channels lets that end the consumer: every connection
closes with 1011, even ones that never used a room, and new ones fail the
same way until Redis is back. This layer turns an outage into two events
the consumers handle like any other: ``layer.unavailable`` once, when the
receive first fails, and ``layer.restored`` once Redis answers again (it
may have restarted empty, so the consumers join their rooms again).
"""

import asyncio
import time

import channels.layers
import redis.exceptions
from channels_redis.core import RedisChannelLayer

CLEAN_EVERY = 1.0  # seconds between two walks of the in-memory layer's queues and groups

# What channels_redis raises when Redis cannot be reached: this layer rides them
# out on receive, and both consumers catch them around group_add, group_discard
# and group_send, so an outage is a clear reply, not a 1011. The in-memory layer never raises them.
OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
RETRY_SECONDS = 1.0  # how often a consumer's receive asks whether Redis is back
# Just after Redis is back, a pooled connection from before the outage can
# still fail once; within this many seconds that is retried quietly.
STALE_SECONDS = 5.0


class InMemoryChannelLayer(channels.layers.InMemoryChannelLayer):
    """channels' in-memory layer, whose walk for expired messages runs at most once every CLEAN_EVERY."""

    clock = staticmethod(time.monotonic)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cleaned = float("-inf")

    def _clean_expired(self):
        now = self.clock()
        if now - self.cleaned < CLEAN_EVERY:
            return
        self.cleaned = now
        super()._clean_expired()


def describe(error):
    return f"{type(error).__name__}: {error}"


class ResilientRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outages = {}  # channel -> what went wrong, while its receive cannot reach Redis
        self.restored = {}  # channel -> when its receive last found Redis back

    async def receive(self, channel):
        loop = asyncio.get_running_loop()
        while True:
            if channel in self.outages:
                await self.wait_for_redis(channel)
                del self.outages[channel]
                self.restored[channel] = loop.time()
                return {"type": "layer.restored"}
            try:
                message = await super().receive(channel)
            except OUTAGE_ERRORS as error:
                if loop.time() - self.restored.get(channel, float("-inf")) < STALE_SECONDS:
                    await asyncio.sleep(RETRY_SECONDS / 10)
                    continue
                self.outages[channel] = describe(error)
                return {"type": "layer.unavailable", "error": describe(error)}
            self.restored.pop(channel, None)
            return message

    async def wait_for_redis(self, channel):
        connection = self.connection(self.consistent_hash(channel))
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await connection.ping()
            except OUTAGE_ERRORS:
                continue
            # Connections opened before the outage are dead: let the pool make new ones.
            await connection.connection_pool.disconnect(inuse_connections=False)
            return
