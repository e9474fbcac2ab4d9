"""Test-only consumers that break the ASGI WebSocket rules on purpose, one script each.

``?script=NAME`` picks what the consumer sends at connect, on each receive and
at disconnect. A sync and an async twin are served at ``/ws/sc/`` and
``/ws/ac/`` by ``application``, which a test hands to a WebsocketCommunicator
or to a real daphne (``python -m daphne tests.rule_breakers:application``).
"""

from urllib.parse import parse_qs

import django

django.setup()  # daphne imports this module before anything else

from channels.consumer import AsyncConsumer, SyncConsumer  # noqa: E402
from channels.exceptions import StopConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from explorer.trace import TraceMiddleware  # noqa: E402

ACCEPT = {"type": "websocket.accept"}
RAISE = "raise"  # a step that raises in the handler
RETURN = "return"  # a step that stops the consumer (StopConsumer): the application returns
CLOSE = {"type": "websocket.close", "code": 4000}


def text(value):
    return {"type": "websocket.send", "text": value}


# name: {"connect": [...], "receive": [...], "disconnect": [...]}, the events sent at each.
SCRIPTS = {
    "accept": {"connect": [ACCEPT]},
    "accept-on-receive": {"receive": [ACCEPT]},
    "accept-twice": {"connect": [ACCEPT, ACCEPT]},
    "send-before-accept": {"connect": [text("early")]},
    "both-payloads": {"connect": [ACCEPT, {"type": "websocket.send", "text": "a", "bytes": b"b"}]},
    "no-payload": {"connect": [ACCEPT, {"type": "websocket.send"}]},
    "text-not-str": {"connect": [ACCEPT, {"type": "websocket.send", "text": b"oops"}]},
    "empty-text": {"connect": [ACCEPT, text(""), text("after the empty one")]},
    "empty-text-and-bytes": {"connect": [ACCEPT, {"type": "websocket.send", "text": "", "bytes": b"b"}]},
    "unknown-type": {"connect": [ACCEPT, {"type": "websocket.message", "text": "x"}, text("after")]},
    "no-type": {"connect": [ACCEPT, {"text": "x"}]},
    "denial-response": {"connect": [{"type": "websocket.http.response.start", "status": 403, "headers": []}]},
    "denial": {
        "connect": [
            {"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-why", b"no ticket")]},
            {"type": "websocket.http.response.body", "body": b"denied"},
        ]
    },
    "raise-before-accept": {"connect": [RAISE]},
    "raise-after-accept": {"connect": [ACCEPT, RAISE]},
    "return-without-accept": {"connect": [RETURN]},
    "return-after-accept": {"connect": [ACCEPT, RETURN]},
    "close-code-2000": {"connect": [ACCEPT, {"type": "websocket.close", "code": 2000}]},
    "subprotocol-not-offered": {"connect": [{"type": "websocket.accept", "subprotocol": "zzz"}]},
    "subprotocol-not-str": {"connect": [{"type": "websocket.accept", "subprotocol": 5}]},
    "headers-not-bytes": {"connect": [{"type": "websocket.accept", "headers": [("x-a", "1")]}]},
    "headers-uppercase": {"connect": [{"type": "websocket.accept", "headers": [(b"X-A", b"1")]}]},
    "headers-subprotocol": {
        "connect": [{"type": "websocket.accept", "headers": [(b"sec-websocket-protocol", b"x")]}]
    },
    "headers": {"connect": [{"type": "websocket.accept", "headers": [(b"x-explorer", b"yes")]}]},
    "close-code-str": {"connect": [ACCEPT, {"type": "websocket.close", "code": "4000"}]},
    "close-code-never-sent": {"connect": [ACCEPT, {"type": "websocket.close", "code": 1006}]},
    "close-code-1001": {"connect": [ACCEPT, {"type": "websocket.close", "code": 1001}]},
    "close-reason-long": {"connect": [ACCEPT, {**CLOSE, "reason": "x" * 124}]},
    "close-reason-bytes": {"connect": [ACCEPT, {**CLOSE, "reason": b"bye"}]},
    "close-reason": {"connect": [ACCEPT, {**CLOSE, "reason": "bye"}]},
    "send-after-close": {"connect": [ACCEPT, CLOSE, text("too late")]},
    "reject": {"connect": [CLOSE]},
    "send-after-disconnect": {"connect": [ACCEPT], "disconnect": [text("nobody is listening")]},
}


class RaisedOnPurposeError(RuntimeError):
    """What a script's RAISE step raises."""


def step(event):
    """A script's step: an event to send, or a RAISE or RETURN that happens instead."""
    if event == RAISE:
        raise RaisedOnPurposeError("a rule breaker raised on purpose")
    if event == RETURN:
        raise StopConsumer
    return event


def script_of(scope):
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return SCRIPTS[query.get("script", ["accept"])[-1]]


class RuleBreakerSync(SyncConsumer):
    trace_name = "sc"

    def websocket_connect(self, event):
        self.perform("connect")

    def websocket_receive(self, event):
        self.perform("receive")

    def websocket_disconnect(self, event):
        self.perform("disconnect")
        raise StopConsumer

    def perform(self, moment):
        for event in script_of(self.scope).get(moment, []):
            self.send(step(event))


class RuleBreakerAsync(AsyncConsumer):
    trace_name = "ac"

    async def websocket_connect(self, event):
        await self.perform("connect")

    async def websocket_receive(self, event):
        await self.perform("receive")

    async def websocket_disconnect(self, event):
        await self.perform("disconnect")
        raise StopConsumer

    async def perform(self, moment):
        for event in script_of(self.scope).get(moment, []):
            await self.send(step(event))


application = TraceMiddleware(
    URLRouter([path("ws/sc/", RuleBreakerSync.as_asgi()), path("ws/ac/", RuleBreakerAsync.as_asgi())])
)
