"""The trace: every ASGI WebSocket event dict and scope, as it crosses, on the console and in a file.

Two lines put a Channels project under it: ``"explorer.trace"`` in
``INSTALLED_APPS``, and ``TraceMiddleware`` around the WebSocket application
in ``asgi.py``. The middleware traces the ASGI boundary (``connection``); a
hook in channels' dispatch (``dispatch``) adds each handler's thread, wait
and time; each line is a ``logging`` record on the ``explorer.trace``
logger, which a queue hands to a listener thread (``handlers``); a renderer
process beside the server (``renderer``) makes it safe to show
(``display``), renders it with Rich (``render``) and records it as JSON
Lines (``recording``). ``LOGGING`` routes or silences it like any other
logger.
"""

from explorer.trace.connection import current
from explorer.trace.middleware import TraceMiddleware

__all__ = ["TraceMiddleware", "note"]


def note(text: str) -> None:
    """Say something on the current connection's trace, on a line of its own (nothing if untraced)."""
    trace = current.get()
    if trace is not None and trace.enabled:
        trace.remark(text)
