"""The channel layer as a traced consumer sees it: each hop a line of the trace.

The dispatch hook gives a traced consumer this stand-in instead of the
layer itself. ``group_add``, ``group_discard``, ``group_send`` and ``send``
are traced before they are made (a failure is noted, then raised as
before); a message from ``receive`` is noted as it arrives, so its wait
for a handler is measured like any event's. Everything else is the
layer's own.
"""

# The calls traced before they are made; a layer record of any other type is a message that arrived.
LAYER_CALLS = ("group_add", "group_discard", "group_send", "send")


class TracedLayer:
    def __init__(self, layer, trace):
        self.layer = layer
        self.trace = trace

    def __getattr__(self, name):
        return getattr(self.layer, name)

    async def group_add(self, group, channel):
        return await self.hop("group_add", {"group": group, "channel": channel}, group, channel)

    async def group_discard(self, group, channel):
        return await self.hop("group_discard", {"group": group, "channel": channel}, group, channel)

    async def group_send(self, group, message):
        return await self.hop("group_send", {"group": group, "message": message}, group, message)

    async def send(self, channel, message):
        return await self.hop("send", {"channel": channel, "message": message}, channel, message)

    async def receive(self, channel):
        message = await self.layer.receive(channel)
        self.trace.layer_arrived(message, channel)
        return message

    async def hop(self, operation, fields, *args):
        self.trace.layer_call(operation, fields)
        try:
            return await getattr(self.layer, operation)(*args)
        except Exception as error:
            self.trace.remark(f"{operation} failed: {type(error).__name__}: {error}")
            raise
