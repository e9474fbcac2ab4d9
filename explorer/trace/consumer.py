"""The mixin that puts a consumer under the trace.

It wraps the ``receive`` and ``send`` callables the server hands to the
consumer, so the trace sees exactly the event dicts that cross the ASGI
boundary, and traces how the consumer ended: a handler's exception is
recorded with its traceback and then left to propagate, so the server does
what it always does (daphne: close 1011, or HTTP 500 before accepting).
"""

from dataclasses import replace

from explorer.trace.config import trace_config
from explorer.trace.connection import ConnectionTrace


class TracedConsumer:
    """Put before ``SyncConsumer`` or ``AsyncConsumer``; set ``endpoint`` ("sc" or "ac").

    Handlers wrap their body in ``with self.trace.handling(event):`` so the
    trace knows which thread ran them.
    """

    endpoint = None
    trace_mode = None  # None: EXPLORER_TRACE's MODE; the bench serves each mode side by side

    async def __call__(self, scope, receive, send):
        config = replace(trace_config(), mode=self.trace_mode) if self.trace_mode else None
        self.trace = ConnectionTrace(
            self.endpoint, scope, config, channel_name=lambda: getattr(self, "channel_name", None)
        )
        if not self.trace.enabled:
            return await super().__call__(scope, receive, send)
        try:
            await super().__call__(scope, self.trace.wrap_receive(receive), self.trace.wrap_send(send))
        except BaseException as error:
            self.trace.exited(error)
            raise
        self.trace.exited()
