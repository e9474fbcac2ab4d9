"""One adjustment to what daphne puts on the wire: failures are explained with a close frame.

autobahn, under daphne, fails a connection by dropping it (its ``failByDrop``
option), so a client that breaks a limit sees only an abnormal closure
(1006) and never learns why. The one a user meets first is daphne's message
size limit (``websocket_max_message_size``, 1 MiB by default): with this,
a message over it gets close code 1009 (message too big) and its reason, as
RFC 6455 intends. daphne has no setting for the option, so ``install`` sets
it on daphne's WebSocket factory as the server creates it; the explorer app
calls it at start-up.
"""

from daphne.ws_protocol import WebSocketFactory


def install():
    """Make daphne's WebSocket factories send a close frame when they fail a connection."""
    if getattr(WebSocketFactory, "explorer_close_on_failure", False):
        return
    original = WebSocketFactory.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807 - replaces the factory's own
        original(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = __init__
    WebSocketFactory.explorer_close_on_failure = True
