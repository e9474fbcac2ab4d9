"""``TraceMiddleware``: the trace at the ASGI boundary, around any WebSocket application.

Put it outermost around the WebSocket side of ``asgi.py``, as uvicorn puts
its message logger around an application::

    "websocket": TraceMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))

Every WebSocket connection then gets a ``ConnectionTrace``: the server's
``receive`` and ``send`` are wrapped, so the trace sees exactly the event
dicts that cross, and the connection is made current for the dispatch hook,
which adds what only channels knows (the consumer, each handler's thread
and time). An application with no channels behind it is traced at the
boundary alone. HTTP and lifespan pass straight through.

Paths in ``untraced`` pass through too: by default the trace's own page
panel (``panel.PATH``), whose every message is trace records, so tracing it
would trace itself without end.
"""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from explorer.trace.config import TraceConfig, trace_config
from explorer.trace.connection import ConnectionTrace, current
from explorer.trace.panel import PATH as PANEL_PATH

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TraceMiddleware:
    """Traces each WebSocket connection of ``app``; ``mode`` overrides EXPLORER_TRACE's MODE.

    ``untraced``: paths whose connections are not traced (exact paths, as in the scope).
    """

    connection_trace = ConnectionTrace  # what traces each connection

    def __init__(
        self, app: ASGIApp, mode: str | None = None, untraced: Iterable[str] = (PANEL_PATH,)
    ) -> None:
        self.app = app
        self.mode = mode
        self.untraced = frozenset(untraced)
        self.made: tuple[TraceConfig, TraceConfig] | None = None  # (the settings' config, in ``mode``)
        if self.config().enabled:
            # Here, not at the top: the package imports this module, and ``python -m
            # explorer.trace.renderer`` must not find the renderer imported by its package.
            from explorer.trace.handlers import warm_up

            warm_up()  # a server builds its application as it starts: the renderer is ready by its first line

    def config(self) -> TraceConfig:
        """The settings' config, in this middleware's ``mode``: one object for every connection, made
        again only when the settings change (a config made per connection was a few microseconds of each
        handshake, and one more object in each batch the renderer is sent)."""
        settings = trace_config()
        if not self.mode:
            return settings
        made = self.made
        if made is None or made[0] is not settings:
            made = self.made = (settings, replace(settings, mode=self.mode))
        return made[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        untraced = isinstance(path, str) and path in self.untraced
        if scope.get("type") != "websocket" or current.get() is not None or untraced:
            # Not a WebSocket, traced further out, or not to be traced.
            return await self.app(scope, receive, send)
        trace = self.connection_trace(scope, self.config(), send)
        token = current.set(trace)
        try:
            if not trace.enabled:
                return await self.app(scope, receive, send)
            try:
                await self.app(scope, trace.wrap_receive(receive), trace.wrap_send(send))
            except BaseException as error:
                # Traced, then left to the server, which does what it always does.
                trace.exited(error)
                raise
            trace.exited()
        finally:
            current.reset(token)
