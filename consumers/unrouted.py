"""Any WebSocket path the explorer has no endpoint at: refused at the handshake, with a reason.

channels' ``URLRouter`` raises ``ValueError("No route found for path ...")``
for such a path, and every server answers HTTP 500 and logs the traceback:
each knock on a wrong door would print one on the server's console. The
last route sends this consumer instead, which closes before accepting (each
of the four servers the explorer knows answers HTTP 403) and says why in
the trace.
"""

from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from explorer.trace import note

ENDPOINTS = "/ws/sc/, /ws/ac/"
MAX_SHOWN = 100  # characters of the path said in the note


class Unrouted(AsyncConsumer):
    trace_name = "unrouted"  # the trace calls its connections unrouted#N

    async def websocket_connect(self, event: dict[str, Any]) -> None:
        path = str(self.scope.get("path", ""))
        shown = repr(path[:MAX_SHOWN]) + ("…" if len(path) > MAX_SHOWN else "")
        # What the server makes of a close before the accept is its own (HTTP 403 on the four known).
        note(
            f"no WebSocket endpoint at {shown}: refused, closed before accepting; the endpoints: {ENDPOINTS}"
        )
        await self.send({"type": "websocket.close"})

    async def websocket_disconnect(self, event: dict[str, Any]) -> None:
        raise StopConsumer
