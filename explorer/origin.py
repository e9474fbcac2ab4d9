"""Origin checking that lets command-line clients in, and says why it refused a browser.

channels' ``AllowedHostsOriginValidator`` refuses a handshake that has no
``Origin`` header, so ``python -m websockets ws://127.0.0.1:8000/ws/ac/`` (or
any non-browser client) would only ever see HTTP 403. A missing Origin cannot
come from a web page, since browsers always send it on a WebSocket handshake,
and cross-site WebSocket hijacking is what the check is for; so this variant
lets it through and checks every Origin that is sent against ALLOWED_HOSTS
exactly as channels does. A refusal is channels' own (its ``WebsocketDenier``
closes before accepting: HTTP 403), traced like any connection, with a note
that says which origin was refused and why.
"""

from channels.security.websocket import OriginValidator
from django.conf import settings

from explorer.trace import note


class BrowserOriginValidator(OriginValidator):
    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        if self.validate_origin(parsed_origin):
            return True
        note(
            f"origin {parsed_origin.geturl()!r} is not one of ALLOWED_HOSTS "
            f"({', '.join(settings.ALLOWED_HOSTS)}): refused (set DJANGO_ALLOWED_HOSTS to let it in)"
        )
        return False


def AllowedHostsOriginValidator(application):  # noqa: N802 - mirrors channels' factory
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)
