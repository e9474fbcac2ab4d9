"""Both consumers, driven through channels' WebsocketCommunicator and the project's ASGI application."""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from consumers.async_consumer import ExplorerAsyncConsumer
from consumers.core import DeliberateError
from consumers.sync_consumer import ExplorerSyncConsumer
from explorer.asgi import application


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


@pytest.mark.parametrize("command", ["/close abc", "/close 1001", "/close 4000 " + "é" * 62, "/nope"])
async def test_malformed_command_gets_an_error_and_the_connection_stays_open(endpoint, command):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data=command)
    assert (await client.receive_from()).startswith("error: ")
    await client.send_to(text_data="still open")
    assert await client.receive_from() == "still open"
    await client.disconnect()


async def test_exception_in_a_handler_leaves_the_consumer_and_is_traced(endpoint, trace):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/raise")
    with pytest.raises(DeliberateError):
        await client.wait()
    text = trace.text()
    assert "consumer raised DeliberateError; the server closes the connection with 1011" in text
    assert "Traceback (most recent call last)" in text
    assert 'raise DeliberateError("/raise: an exception in the handler")' in text


async def test_exception_before_accept_is_traced_as_an_http_500(endpoint, trace):
    client = communicator(endpoint, "raise=1")
    await client.send_input({"type": "websocket.connect"})
    with pytest.raises(DeliberateError):
        await client.wait()
    assert "the handshake was not accepted: the server answers HTTP 500" in trace.text()


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
