"""The trace's hook into channels: which consumer serves a connection, and each handler's thread and time.

Installed once, when the ``explorer.trace`` app is ready, and active only
inside a connection that ``TraceMiddleware`` traces. Two things change:

- ``AsyncConsumer.__call__`` (``SyncConsumer`` inherits it) tells the
  connection's trace which consumer took it, and, when the trace is on,
  stands ``TracedDispatch`` in for the instance's ``dispatch``;
- the ``get_channel_layer`` that ``AsyncConsumer.__call__`` calls returns
  the layer wrapped in a ``TracedLayer``.

``TracedDispatch`` lets channels dispatch as it always does (its
``aclose_old_connections()`` hop for an AsyncConsumer, its worker thread
for a SyncConsumer) and times only the handler it finds: for one dispatch,
the handler's name on the instance holds a timed wrapper. So the thread is
the one the handler really ran on, and the wait is everything channels did
before it.
"""

import functools

import channels.consumer
from channels import DEFAULT_CHANNEL_LAYER
from channels.consumer import AsyncConsumer, SyncConsumer, get_handler_name

from explorer.trace.connection import current
from explorer.trace.layer import TracedLayer
from explorer.trace.timing import Steps

NOTHING = object()


def install():
    if getattr(AsyncConsumer.__call__, "traced", False):
        return
    consumer_call = AsyncConsumer.__call__
    get_channel_layer = channels.consumer.get_channel_layer

    @functools.wraps(consumer_call)
    async def __call__(self, scope, receive, send):  # noqa: N807 - stands in for the consumer's own
        trace = current.get()
        if trace is None or trace.consumer is not None:  # not traced, or a consumer inside a consumer
            return await consumer_call(self, scope, receive, send)
        scope = trace.consumer_started(self, scope)
        if not trace.enabled:
            return await consumer_call(self, scope, receive, send)
        self.dispatch = traced = TracedDispatch(self, self.dispatch, trace)
        try:
            return await consumer_call(self, scope, receive, send)
        finally:
            # The stand-in and the consumer refer to each other: a cycle that only the garbage
            # collector would free, making it run (and promote) on every few connections.
            if vars(self).get("dispatch") is traced:
                del self.dispatch

    __call__.traced = True

    @functools.wraps(get_channel_layer)
    def traced_channel_layer(alias=DEFAULT_CHANNEL_LAYER):
        layer = get_channel_layer(alias)
        trace = current.get()
        if layer is None or trace is None or not trace.enabled:
            return layer
        return TracedLayer(layer, trace)

    AsyncConsumer.__call__ = __call__
    channels.consumer.get_channel_layer = traced_channel_layer


class TracedDispatch:
    """A consumer's ``dispatch``, with the handler it finds timed."""

    def __init__(self, consumer, dispatch, trace):
        self.consumer = consumer
        self.dispatch = dispatch
        self.trace = trace
        # A function, not a bound method of this instance: that would refer back to it, a cycle.
        self.timed = timed_sync if isinstance(consumer, SyncConsumer) else timed_async
        self.wrappers = {}  # handler name -> (its function, the timed wrapper): made once, not per event

    async def __call__(self, message):
        try:
            name = get_handler_name(message)
        except (ValueError, TypeError, AttributeError) as error:
            self.trace.unhandled(message, f"channels cannot dispatch it ({error}): the consumer fails")
            return await self.dispatch(message)
        handler = getattr(self.consumer, name, None)
        if handler is None:
            self.trace.unhandled(
                message, f"{type(self.consumer).__name__} has no {name} method: channels raises ValueError"
            )
            return await self.dispatch(message)
        attributes = vars(self.consumer)
        own = attributes.get(name, NOTHING)  # an instance's own handler is put back afterwards
        function = getattr(handler, "__func__", handler)
        made = self.wrappers.get(name)
        if made is None or made[0] is not function:
            made = self.wrappers[name] = (function, self.timed(handler, self.trace))
        attributes[name] = made[1]
        try:
            return await self.dispatch(message)
        finally:
            if own is NOTHING:
                attributes.pop(name, None)
            else:
                attributes[name] = own


def timed_sync(handler, trace):
    """``handler`` (a SyncConsumer's, run on its worker thread) with its start and end traced."""

    def timed(message):
        handling = trace.handler_started(message)
        try:
            result = handler(message)
        except BaseException as error:
            trace.handler_ended(handling, error)
            raise
        trace.handler_ended(handling)
        return result

    return timed


def timed_async(handler, trace):
    """``handler`` (an AsyncConsumer's) with its start and end traced, and each step it held the loop."""

    async def timed(message):
        handling = trace.handler_started(message)
        handling.steps = Steps(handler(message))  # each stretch it held the event loop, timed
        try:
            result = await handling.steps
        except BaseException as error:
            trace.handler_ended(handling, error)
            raise
        trace.handler_ended(handling)
        return result

    return timed
