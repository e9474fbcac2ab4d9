"""The trace of consumers the explorer did not write: channels' generic consumers, a user's own
subclasses and a plain ASGI application, each unchanged behind ``TraceMiddleware``."""

import re
import threading
import time

import pytest
from channels.consumer import AsyncConsumer, SyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from explorer.bench.app import raw_echo
from explorer.trace import TraceMiddleware
from tests.conftest import ARRIVED, CLOCKS, moment


class Echo(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data)


class AsyncEcho(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


class JsonEcho(JsonWebsocketConsumer):
    def receive_json(self, content):
        self.send_json({"echo": content})


class AsyncJsonEcho(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content):
        await self.send_json({"echo": content})


class Shouting(Echo):
    """A user's subclass, with a dispatch of its own that calls channels'."""

    def dispatch(self, message):
        return super().dispatch(message)

    def receive(self, text_data=None, bytes_data=None):
        super().receive(text_data=text_data.upper())


class AsyncShouting(AsyncEcho):
    async def dispatch(self, message):
        return await super().dispatch(message)

    async def receive(self, text_data=None, bytes_data=None):
        await super().receive(text_data=text_data.upper())


class Grouped(WebsocketConsumer):
    groups = ["lobby"]

    def receive(self, text_data=None, bytes_data=None):
        from asgiref.sync import async_to_sync

        async_to_sync(self.channel_layer.group_send)("lobby", {"type": "lobby.message", "text": text_data})

    def lobby_message(self, event):
        self.send(text_data=event["text"])


class AsyncGrouped(AsyncWebsocketConsumer):
    groups = ["lobby"]

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send("lobby", {"type": "lobby.message", "text": text_data})

    async def lobby_message(self, event):
        await self.send(text_data=event["text"])


class Failing(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        raise ZeroDivisionError("a bug in the handler")


class AsyncFailing(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        raise ZeroDivisionError("a bug in the handler")


class RawSync(SyncConsumer):
    def websocket_connect(self, event):
        self.send({"type": "websocket.accept"})

    def websocket_receive(self, event):
        self.send({"type": "websocket.send", "text": event["text"]})

    def websocket_disconnect(self, event):
        raise StopConsumer


class RawAsync(AsyncConsumer):
    async def websocket_connect(self, event):
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, event):
        await self.send({"type": "websocket.send", "text": event["text"]})

    async def websocket_disconnect(self, event):
        raise StopConsumer


PAIRS = {
    "raw": (RawSync, RawAsync),
    "websocket": (Echo, AsyncEcho),
    "json": (JsonEcho, AsyncJsonEcho),
    "subclass": (Shouting, AsyncShouting),
}


@pytest.fixture(params=["sync", "async"])
def flavour(request):
    return request.param


def consumer_of(kind, flavour):
    sync, asynchronous = PAIRS[kind]
    return sync if flavour == "sync" else asynchronous


def served(consumer):
    return TraceMiddleware(URLRouter([path("ws/thing/", consumer.as_asgi())]))


async def talk(consumer, *texts):
    client = WebsocketCommunicator(served(consumer), "/ws/thing/")
    connected, _ = await client.connect()
    assert connected
    replies = []
    for text in texts:
        await client.send_to(text_data=text)
        replies.append(await client.receive_from())
    await client.disconnect()
    return replies


def loop_thread():
    return threading.main_thread().name  # pytest-asyncio runs the loop here


# One message echoed, as (kind, event type) a record.
ECHO_STEPS = [
    ("scope", "websocket"),
    ("in", "websocket.connect"),
    ("out", "websocket.accept"),
    ("done", "websocket.connect"),
    ("in", "websocket.receive"),
    ("out", "websocket.send"),
    ("done", "websocket.receive"),
    ("in", "websocket.disconnect"),
    ("done", "websocket.disconnect"),
    ("exit", None),
]


def one_connection(records):
    """The name of the one connection ``records`` are of, and its steps."""
    [connection] = {r["connection"] for r in records}
    return connection, [(r["kind"], (r.get("event") or {}).get("type")) for r in records]


@pytest.mark.parametrize("kind", list(PAIRS))
async def test_the_whole_trace_of_a_consumer_that_knows_nothing_of_it(trace, kind, flavour):
    consumer = consumer_of(kind, flavour)
    text = '{"a": 1}' if kind == "json" else "hello"
    await talk(consumer, text)
    records = trace.records()
    connection, steps = one_connection(records)
    assert connection.startswith(f"{consumer.__name__}#")
    assert steps == ECHO_STEPS
    scope = records[0]
    assert scope["consumer"] == f"{consumer.__module__}.{consumer.__qualname__}"
    assert scope["event"]["path"] == "/ws/thing/"
    assert "url_route" in scope["event"]  # the scope as the consumer got it
    handled = [r for r in records if r["kind"] in ("in", "done")]
    threads = {r["thread"] for r in handled}
    if flavour == "async":
        assert threads == {loop_thread()}
    else:
        [worker] = threads
        assert worker.startswith("ThreadPoolExecutor")
    assert all(r["wait"] >= 0 for r in records if r["kind"] == "in")
    assert all(r["handler"] >= 0 for r in records if r["kind"] == "done")
    assert records[-1]["note"] == "consumer returned; no ASGI rule broken"


async def test_the_scope_key_tells_a_consumer_its_connections_name(trace, flavour):
    seen = {}

    class Named(consumer_of("raw", flavour)):
        trace_name = "mine"

        def websocket_connect(self, event):
            seen["name"] = self.scope["trace_connection"]
            return super().websocket_connect(event)

    await talk(Named, "hi")
    connection, _ = one_connection(trace.records())
    assert connection == seen["name"]
    assert connection.startswith("mine#")


async def test_layer_hops_and_group_messages_are_traced_with_the_handlers_thread(trace, flavour):
    consumer = Grouped if flavour == "sync" else AsyncGrouped
    assert await talk(consumer, "hi all") == ["hi all"]
    records = trace.records()
    layer = [r for r in records if r["kind"] == "layer"]
    assert [r["event"]["type"] for r in layer] == [
        "group_add",
        "group_send",
        "lobby.message",
        "group_discard",
    ]
    channel = layer[0]["event"]["channel"]
    assert channel.startswith("specific.")
    assert layer[1]["event"]["message"] == {"type": "lobby.message", "text": "hi all"}
    received = layer[2]
    assert received["event"]["channel"] == channel
    assert received["wait"] >= 0  # it arrived through the layer's receive, and waited for its handler
    [done] = [r for r in records if r["kind"] == "done" and r["event"]["type"] == "lobby.message"]
    expected = loop_thread() if flavour == "async" else done["thread"]
    assert {r["thread"] for r in layer} == {expected}
    if flavour == "sync":
        assert expected.startswith("ThreadPoolExecutor")  # not the loop, where the hop itself runs
    assert not get_channel_layer().groups.get("lobby")


async def test_a_handler_that_raises_is_traced_with_its_traceback_and_nothing_else_changes(trace, flavour):
    consumer = Failing if flavour == "sync" else AsyncFailing
    client = WebsocketCommunicator(served(consumer), "/ws/thing/")
    await client.connect()
    await client.send_to(text_data="boom")
    with pytest.raises(ZeroDivisionError, match="a bug in the handler"):
        await client.receive_output()
    records = trace.records()
    [done] = [r for r in records if r["kind"] == "done" and r["event"]["type"] == "websocket.receive"]
    assert done["note"] == "raised ZeroDivisionError"
    assert done["outcome"] == "raised"
    error = records[-1]
    assert error["kind"] == "error"
    # Where it was raised, in the consumer's own file, and what it said.
    assert error["note"].startswith(
        "consumer raised ZeroDivisionError at tests/explorer/test_any_consumer.py:"
    )
    assert "(receive): a bug in the handler;" in error["note"]
    assert "ZeroDivisionError: a bug in the handler" in error["traceback"]
    assert "in receive" in error["traceback"]


async def test_a_failed_handler_is_not_marked_done_and_its_traceback_folds_the_plumbing(trace, flavour):
    consumer = Failing if flavour == "sync" else AsyncFailing
    client = WebsocketCommunicator(served(consumer), "/ws/thing/")
    await client.connect()
    await client.send_to(text_data="boom")
    with pytest.raises(ZeroDivisionError):
        await client.receive_output()
    text = trace.text()
    [failed] = [line for line in text.splitlines() if "websocket.receive" in line and "handler" in line]
    assert "✗ failed" in failed and "✓" not in failed
    traceback = text[text.index("Traceback (most recent call last)") :]
    # The test harness logs no traceback of its own: the trace prints one, the consumer's frames whole
    # and channels' and asgiref's folded into a line that counts them.
    assert "in receive" in traceback
    assert "channels/consumer.py" not in traceback and "asgiref/sync.py" not in traceback
    assert re.search(r"… \d+ frames of [^\n]*channels", traceback)
    assert len(traceback.splitlines()) < 20


async def early_sender(scope, receive, send):
    await receive()
    await send({"type": "websocket.send", "text": "too early"})


async def test_a_plain_asgi_application_is_traced_at_the_boundary(trace):
    client = WebsocketCommunicator(TraceMiddleware(raw_echo), "/raw/")
    await client.connect()
    await client.send_to(text_data="hello")
    assert await client.receive_from() == "hello"
    await client.disconnect()
    records = trace.records()
    connection, steps = one_connection(records)
    assert connection.startswith("/raw/#")  # no consumer: named after its path
    assert steps == [step for step in ECHO_STEPS if step[0] != "done"]  # no dispatch: no handler timed
    assert "consumer" not in records[0]
    assert {r["thread"] for r in records if r["kind"] in ("in", "out")} == {loop_thread()}
    assert records[-1]["note"] == "application returned; no ASGI rule broken"


async def test_a_plain_application_that_breaks_a_rule_is_told_so(trace):
    client = WebsocketCommunicator(TraceMiddleware(early_sender), "/raw/")
    await client.send_input({"type": "websocket.connect"})
    await client.receive_output()
    await client.wait()
    [out] = [r for r in trace.records() if r["kind"] == "out"]
    assert [v["rule"] for v in out["violations"]] == ["state.send-before-accept"]


async def test_http_passes_through_untraced(trace):
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["type"])

    await TraceMiddleware(app)({"type": "http", "path": "/"}, None, None)
    assert calls == ["http"]
    assert trace.records() == []


async def test_a_connect_that_waited_for_the_sync_thread_says_whose_handler_held_it(trace, flavour):
    class Slow(SyncConsumer):
        def websocket_connect(self, event):
            self.send({"type": "websocket.accept"})

        def websocket_receive(self, event):
            import time

            time.sleep(0.6)
            self.send({"type": "websocket.send", "text": "done"})

        def websocket_disconnect(self, event):
            raise StopConsumer

    slow = WebsocketCommunicator(served(Slow), "/ws/thing/")
    await slow.connect()
    await slow.send_to(text_data="work")
    await trace.handler_started("work")  # the sync thread is held now
    late = WebsocketCommunicator(served(consumer_of("raw", flavour)), "/ws/thing/")
    sent = time.time()
    await late.connect(timeout=10)
    assert await slow.receive_from(timeout=10) == "done"
    await late.disconnect()
    await slow.disconnect()
    records = trace.records()
    [slow_name] = {r["connection"] for r in records if r["connection"].startswith("Slow#")}
    [connect] = [
        r
        for r in records
        if r["kind"] == "in"
        and r["event"]["type"] == "websocket.connect"
        and r["connection"].startswith("Raw")
    ]
    [worked] = [
        r for r in records if r["connection"] == slow_name and r["kind"] == "done" and r["handler"] >= 0.6
    ]
    # It arrived as it was sent, and its handler could not start before the held thread was free: its wait
    # is the time between (on the wall clock, each connection's anchored on it as it opened: give or take).
    assert sent - CLOCKS <= moment(connect) <= sent + ARRIVED
    assert moment(connect) + connect["wait"] >= moment(worked) - CLOCKS
    assert connect["slow"] is True
    [why] = connect["notes"]
    assert f"held by {slow_name} (websocket.receive 'work'" in why
