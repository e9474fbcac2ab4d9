"""Which web pages may open a WebSocket to the explorer: its own page, and none else unless named.

A browser sends ``Origin`` with every WebSocket handshake, and any page the
browser has open could try: this is cross-site WebSocket hijacking, what an
origin check is for. channels' ``AllowedHostsOriginValidator`` compares the
Origin's host with ALLOWED_HOSTS and ignores its port, so any page served
on the same machine (a dev server at ``http://localhost:3000``) could drive
the explorer. This check wants the page to be the explorer's own: the
Origin's host and port are the handshake's ``Host`` (and its host is in
ALLOWED_HOSTS), or the Origin is one of ``DJANGO_ALLOWED_ORIGINS``.

A handshake with no Origin is let through: it cannot come from a web page,
and command-line clients (``python -m websockets``, ``manage.py wsclient``)
send none. A refusal is channels' own (``WebsocketDenier`` closes before
accepting: HTTP 403), traced like any connection, with a note saying which
origin was refused and why.
"""

from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings

from explorer.redaction import header_text
from explorer.trace import note
from explorer.trace.config import trace_config


def header(scope, name):
    value = next((value for key, value in scope.get("headers", []) if key == name), None)
    return value.decode("latin-1") if value is not None else None


class SameOriginValidator(OriginValidator):
    async def __call__(self, scope, receive, send):
        origin, host = header(scope, b"origin"), header(scope, b"host")
        if origin is None or origin in allowed_origins() or self.same_origin(origin, host):
            return await self.application(scope, receive, send)
        config = trace_config()  # the headers' credentials hidden, as in the scope
        shown, host = header_text(b"origin", origin, config), host and header_text(b"host", host, config)
        note(
            f"origin {shown!r} is not this page's ({host!r}) nor one of DJANGO_ALLOWED_ORIGINS: refused "
            "(set DJANGO_ALLOWED_ORIGINS to let a page from elsewhere drive the explorer)"
        )
        return await WebsocketDenier()(scope, receive, send)

    def same_origin(self, origin, host):
        try:
            parsed = urlparse(origin)
        except ValueError:
            return False
        return bool(host) and parsed.netloc.lower() == host.lower() and self.validate_origin(parsed)


def allowed_origins():
    return getattr(settings, "ALLOWED_ORIGINS", [])


def AllowedOriginValidator(application):  # noqa: N802 - mirrors channels' factory
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return SameOriginValidator(application, allowed_hosts)
