"""Each daphne server note, backed by what a real client got from a real daphne.

The trace notes, at the event, where daphne 4.2 does not put on the wire what
the event asked for (``explorer/trace/server_notes.py``). Here the same event
goes through a real daphne to the websockets client, and the test checks both
what the client saw and that the trace said so at that event.
"""

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus


async def session(url, count=None):
    """Open, collect messages until the server closes (or ``count`` came): what the client saw."""
    seen = {"messages": [], "close": None}
    async with connect(url, open_timeout=10) as ws:
        try:
            while count is None or len(seen["messages"]) < count:
                seen["messages"].append(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed:
            seen["close"] = (ws.close_code, ws.close_reason)
        except TimeoutError:
            pass
    return seen


def note_at(records, kind, event_type, fragment):
    """The records of this kind and event type whose notes mention ``fragment``."""
    return [
        record
        for record in records
        if record["kind"] == kind
        and (record.get("event") or {}).get("type") == event_type
        and any(fragment in note for note in record.get("notes", ()))
    ]


# script: (what the client sees, the event the note is at, a phrase of the note)
CLOSED_WITH_1011 = {
    "accept-twice": ("websocket.accept", "fails a second accept"),
    "both-payloads": ("websocket.send", "raises ValueError in send for bytes and text together"),
    "no-type": (None, "raises KeyError('type') in send"),
    "close-code-1001": ("websocket.close", "autobahn sends only 1000 or 3000-4999"),
}


@pytest.mark.parametrize("script", sorted(CLOSED_WITH_1011))
async def test_events_daphne_refuses_close_the_connection_with_1011(rule_breaker_server, endpoint, script):
    event_type, phrase = CLOSED_WITH_1011[script]
    url, tag = rule_breaker_server.url_with_tag(endpoint, f"script={script}")
    seen = await session(url)
    assert seen["messages"] == []
    assert seen["close"] == (1011, "")
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(tag))
    assert note_at(records, "out", event_type, phrase)
    assert records[-1]["kind"] == "error"
    assert "the server closes the connection with 1011" in records[-1]["note"]


async def test_an_empty_message_is_not_sent_at_all(rule_breaker_server, endpoint):
    url, tag = rule_breaker_server.url_with_tag(endpoint, "script=empty-text")
    seen = await session(url, count=1)
    assert seen["messages"] == ["after the empty one"]
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(tag))
    [empty] = note_at(records, "out", "websocket.send", "sends nothing for an empty message")
    assert empty["event"] == {"type": "websocket.send", "text": ""}


async def test_of_an_empty_text_and_bytes_only_the_non_empty_is_sent(rule_breaker_server, endpoint):
    url, tag = rule_breaker_server.url_with_tag(endpoint, "script=empty-text-and-bytes")
    seen = await session(url, count=1)
    assert seen["messages"] == [b"b"]
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(tag))
    assert note_at(records, "out", "websocket.send", "sends only the non-empty one")


async def test_an_unknown_event_type_is_ignored(rule_breaker_server, endpoint):
    url, tag = rule_breaker_server.url_with_tag(endpoint, "script=unknown-type")
    seen = await session(url, count=1)
    assert seen["messages"] == ["after"]
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(tag))
    assert note_at(records, "out", "websocket.message", "ignores event types it does not know")


async def test_send_before_accept_is_an_http_500(rule_breaker_server, endpoint):
    url, tag = rule_breaker_server.url_with_tag(endpoint, "script=send-before-accept")
    with pytest.raises(InvalidStatus) as refused:
        await session(url)
    assert refused.value.response.status_code == 500
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(tag))
    assert note_at(records, "out", "websocket.send", "the client gets HTTP 500")
    assert records[-1]["kind"] == "error" and "HTTP 500" in records[-1]["note"]


async def test_send_after_close_raises_in_the_consumer_and_never_arrives(rule_breaker_server, endpoint):
    url, tag = rule_breaker_server.url_with_tag(endpoint, "script=send-after-close")
    seen = await session(url)
    assert seen["messages"] == []
    assert seen["close"] == (4000, "")
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(tag))
    assert note_at(records, "out", "websocket.send", "raises autobahn's Disconnected")
    # Which of the two happens is a race with the client's answer to the close.
    ending = records[-1]
    if ending["kind"] == "error":
        assert ending["note"].startswith("consumer raised Disconnected; the connection was already closing")
    else:
        assert ending["note"] == "consumer returned; 1 ASGI rule violation"


async def test_send_after_disconnect_is_dropped_without_an_error(rule_breaker_server, endpoint):
    url, tag = rule_breaker_server.url_with_tag(endpoint, "script=send-after-disconnect")
    async with connect(url) as ws:
        await ws.close(code=4000)
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(tag))
    assert note_at(records, "out", "websocket.send", "drops events sent after the connection ended")
    assert records[-1]["kind"] == "exit"  # daphne did not raise into the consumer


async def test_the_reason_of_a_close_is_dropped(server, endpoint):
    url, tag = server.url_with_tag(endpoint)
    async with connect(url) as ws:
        await ws.send("/close 4001 bye now")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert (ws.close_code, ws.close_reason) == (4001, "")
    records = server.records_of(server.connection_tagged(tag))
    [close] = note_at(records, "out", "websocket.close", "the reason is dropped")
    assert close["event"] == {"type": "websocket.close", "code": 4001, "reason": "bye now"}


async def test_accept_headers_are_not_in_the_handshake_response(server, endpoint):
    url, tag = server.url_with_tag(endpoint, "header=X-Explorer:yes")
    async with connect(url) as ws:
        assert "x-explorer" not in ws.response.headers
        assert ws.response.status_code == 101
    records = server.records_of(server.connection_tagged(tag))
    [accept] = note_at(records, "out", "websocket.accept", "ignores accept headers")
    assert accept["event"]["headers"] == [{"$tuple": ["x-explorer", "yes"]}]


async def test_close_before_accept_is_a_403_without_code_or_reason(server, endpoint):
    url, tag = server.url_with_tag(endpoint, "reject=1")
    with pytest.raises(InvalidStatus) as rejected:
        await session(url)
    assert rejected.value.response.status_code == 403
    records = server.records_of(server.connection_tagged(tag))
    assert note_at(records, "out", "websocket.close", "refuses the handshake with HTTP 403")


async def test_the_clients_close_reason_is_not_passed_on_nor_echoed(server, endpoint):
    url, tag = server.url_with_tag(endpoint)
    async with connect(url) as ws:
        await ws.close(code=4002, reason="client says bye")
    # The closing handshake's answer is not an echo of the client's close.
    assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (1000, "")
    records = server.records_of(server.connection_tagged(tag))
    [disconnect] = note_at(records, "in", "websocket.disconnect", "does not pass on the reason")
    assert disconnect["event"] == {"type": "websocket.disconnect", "code": 4002}
    assert note_at(records, "in", "websocket.disconnect", "answered the client's close 4002 with 1000")


async def test_a_handshake_open_past_daphnes_timeout_is_dropped(rule_breaker_server, server, endpoint):
    """Two ways to keep a handshake open too long, run together: both take daphne's 5 s timeout."""
    unoffered, unoffered_tag = rule_breaker_server.url_with_tag(endpoint, "script=subprotocol-not-offered")
    delayed, delayed_tag = server.url_with_tag(endpoint, "delay=6")
    outcomes = await asyncio.gather(session(unoffered), session(delayed), return_exceptions=True)
    # The client never gets an HTTP response: daphne drops the TCP connection.
    assert [type(outcome) for outcome in outcomes] == [InvalidMessage, InvalidMessage]
    records = rule_breaker_server.records_of(rule_breaker_server.connection_tagged(unoffered_tag))
    assert note_at(records, "out", "websocket.accept", "refuses a subprotocol the client did not offer")
    records = server.records_of(server.connection_tagged(delayed_tag))
    assert note_at(records, "out", "websocket.accept", "drops a handshake still open after 5 s")
    [disconnect] = [r for r in records if r["kind"] == "in" and r["event"]["type"] == "websocket.disconnect"]
    assert disconnect["event"]["code"] == 1006  # abnormal closure: no close frame


async def test_a_message_over_the_size_limit_is_refused_with_1009(server, endpoint):
    """daphne's websocket_max_message_size (1 MiB) with the explorer's close-on-failure (explorer/wire.py)."""
    limit = 1024 * 1024
    async with connect(server.url(endpoint), max_size=None) as ws:
        await ws.send("x" * limit)
        assert len(await ws.recv()) == limit  # at the limit: echoed
    url, tag = server.url_with_tag(endpoint)
    async with connect(url, max_size=None) as ws, connect(server.url(endpoint)) as bystander:
        await ws.send("x" * (limit + 1))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        await bystander.send("unaffected")
        assert await bystander.recv() == "unaffected"
    assert ws.protocol.close_rcvd.code == 1009
    assert "exceeds payload limit of 1048576 octets" in ws.protocol.close_rcvd.reason
    records = server.records_of(server.connection_tagged(tag))
    [disconnect] = note_at(
        records, "in", "websocket.disconnect", "refused a message over its websocket_max_message_size"
    )
    assert disconnect["event"]["code"] == 1009
    assert not [r for r in records if r["kind"] == "in" and r["event"]["type"] == "websocket.receive"]
