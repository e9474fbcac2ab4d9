"""Origin checking that lets command-line clients in.

channels' ``AllowedHostsOriginValidator`` refuses a handshake that has no
``Origin`` header, so ``python -m websockets ws://127.0.0.1:8000/ws/ac/`` (or
any non-browser client) would only ever see HTTP 403. A missing Origin cannot
come from a web page, since browsers always send it on a WebSocket handshake,
and cross-site WebSocket hijacking is what the check is for; so this variant
lets it through and checks every Origin that is sent against ALLOWED_HOSTS
exactly as channels does.
"""

from urllib.parse import urlparse

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings

from explorer.trace.consumer import TracedConsumer


class OriginDenier(TracedConsumer, AsyncConsumer):
    """Refuses the handshake (a close before accepting: HTTP 403), under the trace.

    channels' own ``WebsocketDenier`` does the same unseen; a refused origin
    is worth seeing when a page on another port or host cannot connect.
    """

    def __init__(self, origin):
        self.origin = origin
        # The endpoint the page asked for, so the trace's id says where it knocked.
        self.endpoint = None

    async def __call__(self, scope, receive, send):
        self.endpoint = {"/ws/sc/": "sc", "/ws/ac/": "ac"}.get(scope.get("path"), "ws")
        return await super().__call__(scope, receive, send)

    async def websocket_connect(self, event):
        with self.trace.handling(event):
            self.trace.remark(
                f"origin {self.origin!r} is not one of ALLOWED_HOSTS ({', '.join(settings.ALLOWED_HOSTS)}): "
                "refused (set DJANGO_ALLOWED_HOSTS to let it in)"
            )
            await self.send({"type": "websocket.close"})

    async def websocket_disconnect(self, event):
        with self.trace.handling(event):
            raise StopConsumer


class BrowserOriginValidator(OriginValidator):
    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)

    async def __call__(self, scope, receive, send):
        origin = next((value for name, value in scope.get("headers", []) if name == b"origin"), None)
        if scope.get("type") == "websocket" and origin is not None:
            text = origin.decode("latin-1")
            if not self.valid_origin(urlparse(text)):
                return await OriginDenier(text)(scope, receive, send)
        return await super().__call__(scope, receive, send)


def AllowedHostsOriginValidator(application):  # noqa: N802 - mirrors channels' factory
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)
