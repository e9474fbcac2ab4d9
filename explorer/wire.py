"""Two adjustments to daphne 4.2, made as the explorer starts (``install``, from the app's ``ready``).

1. Failures are explained with a close frame. autobahn, under daphne, fails
   a connection by dropping it (its ``failByDrop`` option), so a client that
   breaks a limit sees only an abnormal closure (1006) and never learns why.
   The one a user meets first is daphne's message size limit
   (``websocket_max_message_size``, 1 MiB by default): with this, a message
   over it gets close code 1009 (message too big) and its reason, as RFC 6455
   intends. daphne has no setting for the option, so it is set on daphne's
   WebSocket factory as the server creates it.

2. Stopping with connections open works. daphne's ``kill_all_applications``
   reads ``details["application_instance"]`` for every connection, but a
   connection whose application has already ended has none; the KeyError
   aborted the shutdown, the consumers were never cancelled, and the
   interpreter crashed (SIGSEGV) finalising their suspended coroutines at
   exit. This version skips those connections.
"""

import asyncio
import logging

from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet import defer

logger = logging.getLogger("daphne.server")


def install():
    if getattr(WebSocketFactory, "explorer_adjusted", False):
        return
    original_init = WebSocketFactory.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807 - replaces the factory's own
        original_init(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = __init__
    WebSocketFactory.explorer_adjusted = True
    Server.kill_all_applications = kill_all_applications


def kill_all_applications(self):
    """Cancel every application still running, and have Twisted wait until they have ended."""
    instances = (details.get("application_instance") for details in self.connections.values())
    pending = [instance for instance in instances if instance is not None and not instance.done()]
    for instance in pending:
        instance.cancel()
    logger.info("Killed %i pending application instances", len(pending))
    waiting = defer.Deferred.fromFuture(asyncio.gather(*pending))
    waiting.addErrback(lambda failure: None)
    return waiting
