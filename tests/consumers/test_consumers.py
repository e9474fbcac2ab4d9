"""Both consumers, driven through channels' WebsocketCommunicator and the project's ASGI application."""

import asyncio
import json
import re
import threading

import pytest
from channels.testing import WebsocketCommunicator

from consumers.actions import DeliberateError
from consumers.async_consumer import ExplorerAsyncConsumer
from consumers.sync_consumer import ExplorerSyncConsumer
from explorer.asgi import application
from explorer.trace import panel


def communicator(endpoint, query="", **kwargs):
    path = f"/ws/{endpoint}/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, **kwargs)


async def test_routes_lead_to_the_raw_consumers(endpoint):
    from routing import websocket_urlpatterns

    [route] = [r for r in websocket_urlpatterns if str(r.pattern) == f"ws/{endpoint}/"]
    expected = {"sc": ExplorerSyncConsumer, "ac": ExplorerAsyncConsumer}[endpoint]
    assert route.callback.consumer_class is expected


async def test_echoes_text_as_text_and_bytes_as_bytes(endpoint):
    client = communicator(endpoint)
    assert await client.connect() == (True, None)
    await client.send_to(text_data="hello")
    assert await client.receive_output() == {"type": "websocket.send", "text": "hello"}
    await client.send_to(bytes_data=b"\x00\xffbin")
    assert await client.receive_output() == {"type": "websocket.send", "bytes": b"\x00\xffbin"}
    await client.disconnect()


async def test_close_command_sends_close_with_code_and_reason(endpoint):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/close 4001 bye now")
    assert await client.receive_output() == {"type": "websocket.close", "code": 4001, "reason": "bye now"}
    await client.disconnect(code=4001)


async def test_reject_sends_close_before_accept(endpoint):
    client = communicator(endpoint, "reject=1")
    await client.send_input({"type": "websocket.connect"})
    assert await client.receive_output() == {"type": "websocket.close"}
    await client.disconnect()


@pytest.mark.parametrize(
    ("query", "offered", "chosen"),
    [
        ("subprotocol=b", ["a", "b"], "b"),
        ("", ["a", "b"], "a"),
        ("subprotocol=zzz", ["a", "b"], "a"),
        ("", [], None),
    ],
)
async def test_accepts_with_the_asked_subprotocol_if_offered_else_the_first(endpoint, query, offered, chosen):
    client = communicator(endpoint, query, subprotocols=offered)
    assert await client.connect() == (True, chosen)
    await client.disconnect()


@pytest.mark.parametrize(
    "command",
    [
        *["/close abc", "/close 1001", "/close 4000 " + "é" * 62, "/nope", "/sleep 31", "/burst 0"],
        "/block x",
        # Digits that str.isdigit(), int() or float() take, and a number does not (core.number).
        *["/burst ²", "/burst 2 ①", "/sleep ٣", "/close ٤٠٠٠", "/deny"],
    ],
)
async def test_malformed_command_gets_an_error_and_the_connection_stays_open(endpoint, command):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data=command)
    assert (await client.receive_from()).startswith("error: ")
    await client.send_to(text_data="still open")
    assert await client.receive_from() == "still open"
    await client.disconnect()


MODULES = {"sc": "sync_consumer", "ac": "async_consumer"}


async def test_exception_in_a_handler_leaves_the_consumer_and_is_traced(endpoint, trace):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/raise")
    with pytest.raises(DeliberateError):
        await client.wait()
    text = trace.text()
    # No server here: the trace says what happens in a test, not what daphne would do.
    assert f"consumer raised DeliberateError at consumers/{MODULES[endpoint]}.py:" in text
    assert ": /raise: an exception in the handler; the test's next receive_output() raises it" in text
    assert "Traceback (most recent call last)" in text
    assert (
        "raise actions.DeliberateError(reason)" in text
        and "DeliberateError: /raise: an exception in the handler" in text
    )


async def test_exception_before_accept_is_traced_with_its_traceback(endpoint, trace):
    client = communicator(endpoint, "raise=1")
    await client.send_input({"type": "websocket.connect"})
    with pytest.raises(DeliberateError):
        await client.wait()
    [error] = [r for r in trace.records() if r["kind"] == "error"]
    assert error["note"].startswith("consumer raised DeliberateError")
    assert "?raise=1: an exception before accepting" in error["traceback"]


async def test_a_failing_connection_does_not_disturb_another(endpoint):
    healthy, failing = communicator(endpoint), communicator(endpoint)
    await healthy.connect()
    await failing.connect()
    await failing.send_to(text_data="/raise")
    with pytest.raises(DeliberateError):
        await failing.wait()
    await healthy.send_to(text_data="still here")
    assert await healthy.receive_from() == "still here"
    await healthy.disconnect()


async def test_disconnect_stops_the_consumer(endpoint):
    client = communicator(endpoint)
    await client.connect()
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(client.future, timeout=2)
    assert client.future.done() and client.future.exception() is None


async def test_whoami_tells_the_thread_and_whether_it_is_the_event_loops(endpoint):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/whoami")
    reply = json.loads(await client.receive_from())
    consumer_class, kind = {
        "sc": ("ExplorerSyncConsumer", "SyncConsumer"),
        "ac": ("ExplorerAsyncConsumer", "AsyncConsumer"),
    }[endpoint]
    assert reply["consumer"].endswith(consumer_class)
    assert reply["kind"] == kind
    assert reply["event_loop_thread"] is (endpoint == "ac")
    if endpoint == "ac":
        assert reply["thread"] == threading.current_thread().name  # the test's own loop thread
    else:
        assert reply["thread"] != threading.current_thread().name
    assert reply["channel_name"].startswith("specific.")  # the in-memory layer named it
    await client.disconnect()


async def test_scope_replies_with_the_redacted_scope(endpoint):
    client = communicator(endpoint, "a=1", headers=[(b"cookie", b"sessionid=secret"), (b"host", b"x")])
    await client.connect()
    await client.send_to(text_data="/scope")
    text = await client.receive_from()
    scope = json.loads(text)
    assert scope["path"] == f"/ws/{endpoint}/"
    assert scope["query_string"] == "a=1"
    assert ["cookie", "<redacted>"] in scope["headers"]
    assert scope["session"] == "<redacted>"
    assert "secret" not in text
    await client.disconnect()


async def test_bytes_and_burst(endpoint):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/bytes hi")
    assert await client.receive_from() == b"hi"
    await client.send_to(text_data="/burst 50 100")
    received = [await client.receive_from() for _ in range(50)]
    assert [text.split()[0] for text in received] == [f"{n}/50" for n in range(1, 51)]
    assert {len(text) for text in received} == {100}
    assert await client.receive_nothing()
    await client.disconnect()


async def arrival_order(clients_and_texts):
    """Send each text on its client in turn, then return which replies came back in which order."""
    order = []

    async def collect(name, client):
        await client.receive_from(timeout=10)
        order.append(name)

    tasks = []
    for name, client, text in clients_and_texts:
        await client.send_to(text_data=text)
        tasks.append(asyncio.create_task(collect(name, client)))
        await asyncio.sleep(0.05)  # let the first handler start before the next message
    await asyncio.gather(*tasks)
    return order


# Who answers first when one connection sleeps or blocks and another echoes:
# only an AsyncConsumer's /sleep lets the other connection through.
@pytest.mark.parametrize(
    ("command", "first"),
    [("/sleep 0.5", {"ac": "echo", "sc": "waiter"}), ("/block 0.5", {"ac": "waiter", "sc": "waiter"})],
)
async def test_sleep_yields_and_block_holds(endpoint, command, first):
    waiter, other = communicator(endpoint), communicator(endpoint)
    await waiter.connect()
    await other.connect()
    order = await arrival_order([("waiter", waiter, command), ("echo", other, "hi")])
    assert order[0] == first[endpoint]
    await waiter.disconnect()
    await other.disconnect()


async def test_delay_and_headers_shape_the_accept(endpoint):
    client = communicator(endpoint, "delay=0.1&header=X-Explorer:yes")
    await client.send_input({"type": "websocket.connect"})
    assert await client.receive_output(timeout=5) == {
        "type": "websocket.accept",
        "headers": [[b"x-explorer", b"yes"]],
    }
    await client.disconnect()


async def test_bad_connect_option_is_reported_once_open(endpoint):
    client = communicator(endpoint, "delay=forever")
    assert await client.connect() == (True, None)
    assert await client.receive_from() == "error: ?delay= takes SECONDS from 0 to 30, got 'forever'"
    await client.send_to(text_data="still open")
    assert await client.receive_from() == "still open"
    await client.disconnect()


@pytest.mark.usefixtures("database")  # /say keeps what it says, for /history
async def test_rooms_cross_between_the_sync_and_async_endpoints(trace):
    sync, async_ = communicator("sc"), communicator("ac")
    await sync.connect()
    await async_.connect()
    for client in (sync, async_):
        await client.send_to(text_data="/join lobby")
        assert await client.receive_from() == "joined lobby"
    await sync.send_to(text_data="/say lobby hello from sync")
    [sync_id, async_id] = list(dict.fromkeys(r["connection"] for r in trace.records()))
    for client in (sync, async_):
        assert await client.receive_from() == f"[lobby] {sync_id}: hello from sync"
    await async_.send_to(text_data="/say lobby <b>and</b> from async")
    for client in (sync, async_):
        assert await client.receive_from() == f"[lobby] {async_id}: <b>and</b> from async"
    # Left: the async side hears no more.
    await async_.send_to(text_data="/leave lobby")
    assert await async_.receive_from() == "left lobby"
    await sync.send_to(text_data="/say lobby anyone?")
    assert await sync.receive_from() == f"[lobby] {sync_id}: anyone?"
    assert await async_.receive_nothing(timeout=0.2)
    await sync.disconnect()
    await async_.disconnect()


@pytest.mark.usefixtures("database")  # /say keeps what it says, for /history
async def test_the_layer_hop_is_traced_with_group_and_channel(endpoint, trace):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/join lobby")
    await client.receive_from()
    await client.send_to(text_data="/say lobby hi")
    await client.receive_from()
    await client.disconnect()
    layer = [r for r in trace.records() if r["kind"] == "layer"]
    assert [r["event"]["type"] for r in layer] == ["group_add", "group_send", "room.message", "group_discard"]
    add, send, received, discard = (r["event"] for r in layer)
    channel = add["channel"]
    assert channel.startswith("specific.")
    assert add["group"] == send["group"] == discard["group"] == "lobby"
    assert send["message"] == {
        "type": "room.message",
        "room": "lobby",
        "sender": layer[0]["connection"],
        "text": "hi",
    }
    assert received["channel"] == channel and received["text"] == "hi"
    assert "⇄ layer  room.message" in trace.text()


async def test_a_consumer_leaves_its_rooms_when_it_disconnects(endpoint):
    from channels.layers import get_channel_layer

    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/join gone")
    await client.receive_from()
    layer = get_channel_layer()
    assert len(layer.groups.get("gone", {})) == 1
    await client.disconnect()
    assert not layer.groups.get("gone")


async def test_a_consumer_the_server_cancels_still_leaves_its_rooms(endpoint):
    """A handler still running when the client goes (a long /sleep) keeps the disconnect waiting, and
    a server cancels the application after a while (daphne after application_close_timeout): the
    disconnect handler never runs, and the rooms must not keep the dead channel, nor count against
    everyone's room budget."""
    from channels.layers import get_channel_layer

    from consumers.limits import WATCHED

    rooms_before = sum(limits.rooms for limits in WATCHED)
    client = communicator(endpoint)
    await client.connect()
    for room in ("gone", "also-gone"):
        await client.send_to(text_data=f"/join {room}")
        await client.receive_from()
    layer = get_channel_layer()
    assert len(layer.groups.get("gone", {})) == 1
    client.future.cancel()  # as the server does
    with pytest.raises(asyncio.CancelledError):
        await client.future
    assert not layer.groups.get("gone") and not layer.groups.get("also-gone")
    assert sum(limits.rooms for limits in WATCHED) == rooms_before


async def test_a_refused_origin_is_traced_with_the_reason(endpoint, trace):
    client = communicator(endpoint, headers=[(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1")])
    accepted, _ = await client.connect()  # the close before accepting: HTTP 403 under daphne
    assert not accepted
    await client.disconnect()
    records = trace.records()
    [connection] = {r["connection"] for r in records}
    # channels' own denier refuses it, traced like any consumer; the scope says where it knocked.
    assert connection.startswith("WebsocketDenier#")
    assert records[0]["event"]["path"] == f"/ws/{endpoint}/"
    kinds = [r["kind"] for r in records]
    assert kinds[:3] == ["scope", "note", "in"]
    assert "origin 'http://evil.example' is not this page's ('127.0.0.1')" in trace.text()
    [close] = [r for r in records if r["kind"] == "out"]
    assert close["event"] == {"type": "websocket.close"}


async def test_a_password_in_an_origins_address_stays_out_of_the_trace(endpoint, trace):
    """``http://user:password@host`` is a URL a browser never sends, but a client can: the refusal's note
    and the scope's headers show the address with its userinfo hidden."""
    origin = b"http://ann:s3cr3t@evil.example"
    client = communicator(endpoint, headers=[(b"origin", origin), (b"host", b"127.0.0.1")])
    accepted, _ = await client.connect()
    assert not accepted
    await client.disconnect()
    assert "s3cr3t" not in trace.text() and "s3cr3t" not in trace.flushed().read_text()
    assert "origin 'http://<redacted>@evil.example' is not this page's" in trace.text()
    assert "('origin', 'http://<redacted>@evil.example')" in trace.text()


PAGE = [(b"host", b"127.0.0.1:8000")]


@pytest.mark.parametrize(
    "headers",
    [
        [*PAGE, (b"origin", b"http://127.0.0.1:8000")],  # the explorer's own page
        [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")],
        PAGE,  # no Origin: a command-line client
    ],
)
async def test_the_pages_own_origin_and_no_origin_reach_the_consumer(endpoint, headers):
    client = communicator(endpoint, headers=headers)
    assert await client.connect() == (True, None)
    await client.disconnect()


@pytest.mark.parametrize(
    "origin",
    [b"http://localhost:3000", b"http://127.0.0.1:3000", b"https://127.0.0.1:8000.evil.example", b"null"],
)
async def test_a_page_on_another_port_or_host_is_refused(endpoint, origin, trace):
    """channels' AllowedHostsOriginValidator ignores the port: a local dev server could drive the explorer."""
    client = communicator(endpoint, headers=[*PAGE, (b"origin", origin)])
    connected, _ = await client.connect()
    assert not connected
    await client.disconnect()
    [note] = [r["note"] for r in trace.records() if r["kind"] == "note"]
    assert note.startswith(f"origin {origin.decode()!r} is not this page's ('127.0.0.1:8000')")


async def test_allowed_origins_let_a_named_page_in(endpoint):
    from django.test import override_settings

    with override_settings(ALLOWED_ORIGINS=["http://localhost:3000"]):
        client = communicator(endpoint, headers=[*PAGE, (b"origin", b"http://localhost:3000")])
        assert await client.connect() == (True, None)
        await client.disconnect()


async def test_stats_peak_memory_is_never_below_the_current(endpoint):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/stats")
    stats = json.loads(await client.receive_from())
    await client.disconnect()
    assert stats["peak_rss_kib"] >= stats["rss_kib"] > 0


@pytest.fixture
def failing_layer(monkeypatch):
    """The channel layer's group calls fail as channels_redis' do when Redis is gone; ``fail`` picks which."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    failing = set()

    def fail(*operations):
        failing.clear()
        failing.update(operations)

    for operation in ("group_add", "group_discard", "group_send"):
        real = getattr(layer, operation)

        async def call(*args, _operation=operation, _real=real):
            if _operation in failing:
                raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6379)")
            return await _real(*args)

        monkeypatch.setattr(layer, operation, call)
    return fail


LAYER_FAILED = "error: {} failed (ConnectionRefusedError); try again later"


async def test_a_failed_join_is_an_error_and_no_room(endpoint, failing_layer):
    failing_layer("group_add")
    client = communicator(endpoint)
    await client.connect()
    for _ in range(2):  # not joined, so a second try is a try, not "already in room"
        await client.send_to(text_data="/join lobby")
        assert await client.receive_from() == LAYER_FAILED.format("group_add")
        assert await client.receive_nothing(timeout=0.1)
    failing_layer()
    await client.send_to(text_data="/join lobby")
    assert await client.receive_from() == "joined lobby"
    await client.disconnect()


async def test_a_failed_leave_is_an_error_and_the_room_kept(endpoint, failing_layer):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/join lobby")
    assert await client.receive_from() == "joined lobby"
    failing_layer("group_discard")
    await client.send_to(text_data="/leave lobby")
    assert await client.receive_from() == LAYER_FAILED.format("group_discard")
    assert await client.receive_nothing(timeout=0.1)
    failing_layer()
    await client.send_to(text_data="/leave lobby")  # still in it: a second try leaves
    assert await client.receive_from() == "left lobby"
    await client.disconnect()


async def test_a_failed_leave_on_disconnect_still_leaves_the_other_rooms_and_stops(endpoint, failing_layer):
    from channels.layers import get_channel_layer

    client = communicator(endpoint)
    await client.connect()
    for room in ("first", "second"):
        await client.send_to(text_data=f"/join {room}")
        assert await client.receive_from() == f"joined {room}"
    layer = get_channel_layer()
    real_discard = layer.group_discard

    async def discard(group, channel):
        if group == "first":
            raise ConnectionRefusedError(111, "Connect call failed")
        await real_discard(group, channel)

    layer.group_discard = discard
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(client.future, timeout=2)
    assert client.future.exception() is None
    assert not layer.groups.get("second")


async def test_raise_after_a_delay_waits_first(endpoint):
    client = communicator(endpoint, "raise=1&delay=0.3")
    started = asyncio.get_running_loop().time()
    await client.send_input({"type": "websocket.connect"})
    with pytest.raises(DeliberateError):
        await client.wait(timeout=5)
    assert asyncio.get_running_loop().time() - started >= 0.3


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("/bytes \ud800", "error: /bytes TEXT cannot be sent: '\\ud800' is a lone surrogate, not UTF-8"),
        (
            "/close 4000 \ud800",
            "error: the close reason cannot be sent: '\\ud800' is a lone surrogate, not UTF-8",
        ),
    ],
)
async def test_text_utf8_cannot_encode_is_an_error_and_the_connection_stays_open(endpoint, command, error):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data=command)
    assert await client.receive_from() == error
    await client.send_to(text_data="still open")
    assert await client.receive_from() == "still open"
    await client.disconnect()


@pytest.mark.usefixtures("database")  # /say keeps what it says, for /history
async def test_room_messages_are_signed_with_the_connections_name_with_the_trace_off(endpoint):
    from django.test import override_settings

    with override_settings(EXPLORER_TRACE={"MODE": "off"}):
        client = communicator(endpoint)
        await client.connect()
        await client.send_to(text_data="/join lobby")
        assert await client.receive_from() == "joined lobby"
        await client.send_to(text_data="/say lobby hi")
        sender = (await client.receive_from()).removeprefix("[lobby] ").removesuffix(": hi")
        assert re.fullmatch(rf"{endpoint}#\d+", sender)
        await client.send_to(text_data="/scope")
        assert json.loads(await client.receive_from())["session"] == "<redacted>"
        await client.disconnect()


@pytest.mark.usefixtures("database")  # /say keeps what it says, for /history
async def test_a_room_message_is_one_line_so_it_cannot_pass_as_another_speakers(endpoint):
    """``/say lobby hi\\n[lobby] sc#999: ...`` would reach the room as two lines, the second a message
    sc#999 never sent: its line breaks arrive escaped, as /history shows them."""
    speaker, listener = communicator(endpoint), communicator(endpoint)
    for client in (speaker, listener):
        await client.connect()
        await client.send_to(text_data="/join lobby")
        assert await client.receive_from() == "joined lobby"
    await speaker.send_to(text_data="/say lobby hi\r\n[lobby] sc#999: I am the admin")
    heard = await listener.receive_from()
    assert "\n" not in heard and "\r" not in heard
    assert heard.endswith(": hi\\r\\n[lobby] sc#999: I am the admin")
    for client in (speaker, listener):
        await client.disconnect()


@pytest.mark.usefixtures("database")
async def test_stores_and_reads_past_the_sync_threads_share_are_refused_and_the_room_still_hears(endpoint):
    from django.test import override_settings

    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/join lobby")
    assert await client.receive_from() == "joined lobby"
    with override_settings(EXPLORER_HOLD_SHARE=0.0001):  # spent before the first store
        await client.send_to(text_data="/say lobby hi")
        heard = [await client.receive_from() for _ in range(2)]
        await client.send_to(text_data="/history lobby")
        read = await client.receive_from()
    assert any(line.endswith(": hi") for line in heard)  # the room heard it
    [refusal] = [line for line in heard if line.startswith("error: ")]
    assert refusal.startswith("error: said in lobby, but not kept: the sync thread and the event loop")
    assert read.startswith("error: /history lobby refused: the sync thread and the event loop")
    await client.send_to(text_data="/history lobby")  # the share back: it is read, and hi was not kept
    assert await client.receive_from() == "no messages in lobby yet"
    await client.disconnect()


async def test_command_line_clients_may_take_half_the_panels_and_a_page_the_rest(monkeypatch):
    """A probe opened MAX_PANELS panels with no Origin and never read: the page itself was refused.
    A client with no Origin is not a page; those may hold half the panels, and pages the rest."""
    monkeypatch.setattr(panel, "hub", panel.Hub())  # these watchers alone, whatever ran before

    def watcher(origin=None):
        headers = [(b"origin", origin)] if origin else []
        return WebsocketCommunicator(panel.TracePanel(), panel.PATH, headers=headers)

    opened = []
    try:
        for _ in range(panel.MAX_PANELS // 2):
            client = watcher()
            assert (await client.connect())[0]
            opened.append(client)
        refused = watcher()
        connected, code = await refused.connect()
        assert not connected and code == 1013
        for _ in range(panel.MAX_PANELS - panel.MAX_PANELS // 2):
            page = watcher(b"http://127.0.0.1:8000")
            assert (await page.connect())[0]
            opened.append(page)
        one_too_many = watcher(b"http://127.0.0.1:8000")
        assert not (await one_too_many.connect())[0]
    finally:
        for client in opened:
            await client.disconnect()


async def test_opening_connections_does_not_walk_every_channel_each_time(endpoint, monkeypatch):
    """channels' in-memory layer walks every channel's queue and every group for expired messages at each
    receive, and each connection's consumer starts one: opening N connections walked N² queues, seconds
    on the event loop at a few thousand. The explorer's layer walks them at most once a second."""
    import channels.layers

    from explorer.layers import CLEAN_EVERY

    walks = []
    walk = channels.layers.InMemoryChannelLayer._clean_expired
    monkeypatch.setattr(
        channels.layers.InMemoryChannelLayer, "_clean_expired", lambda self: walks.append(1) or walk(self)
    )
    layer = channels.layers.get_channel_layer()
    now = [1000.0]
    monkeypatch.setattr(layer, "clock", lambda: now[0], raising=False)  # the layer's clock stands still
    monkeypatch.setattr(layer, "cleaned", float("-inf"), raising=False)
    clients = [communicator(endpoint) for _ in range(30)]
    for client in clients:
        assert await client.connect() == (True, None)
    assert len(walks) == 1
    now[0] += CLEAN_EVERY  # a second later, the next receive walks again
    extra = communicator(endpoint)
    assert await extra.connect() == (True, None)
    assert len(walks) == 2
    for client in [*clients, extra]:
        await client.disconnect()


async def test_the_in_memory_layer_still_drops_expired_messages():
    from explorer.layers import CLEAN_EVERY, InMemoryChannelLayer

    layer = InMemoryChannelLayer(expiry=0)  # every message has expired as soon as it is sent
    now = [1000.0]
    layer.clock = lambda: now[0]
    await layer.group_add("room", "gone.inmemory!a")
    first = asyncio.ensure_future(layer.receive("other.inmemory!b"))  # walks, before anything expired
    await asyncio.sleep(0)
    await layer.send("gone.inmemory!a", {"type": "chat.message"})
    second = asyncio.ensure_future(layer.receive("other.inmemory!c"))  # within the second: no walk
    await asyncio.sleep(0)
    assert "gone.inmemory!a" in layer.channels
    now[0] += CLEAN_EVERY
    third = asyncio.ensure_future(layer.receive("other.inmemory!d"))  # a second later: it walks
    await asyncio.sleep(0)
    assert "gone.inmemory!a" not in layer.channels
    assert "gone.inmemory!a" not in layer.groups.get("room", {})
    for waiting in (first, second, third):
        waiting.cancel()
