"""On the wire: a real daphne process serving the explorer, driven by the websockets client.

These show what a client really gets, which is not always what the event
asked for: daphne 4.2 does not put a websocket.close reason on the wire.
"""

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def client_port(ws):
    return ws.local_address[1]


async def closed_code(ws, timeout=5):
    """Wait for the server to close; the close code the client saw."""
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code


async def test_echoes_text_as_text_and_bytes_as_bytes(server, endpoint):
    async with connect(server.url(endpoint)) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\xffbin")
        assert await ws.recv() == b"\x00\xffbin"


async def test_close_command_closes_with_that_code(server, endpoint):
    async with connect(server.url(endpoint)) as ws:
        await ws.send("/close 4001 bye now")
        assert await closed_code(ws) == 4001
        connection = server.connection_of(client_port(ws))
    # The event carried the reason; the trace shows it even though daphne drops it.
    out = [m for m in server.trace_of(connection) if m["kind"] == "out"]
    assert out[-1]["rest"].endswith("{'code': 4001, 'reason': 'bye now'}")


async def test_reject_is_an_http_403(server, endpoint):
    with pytest.raises(InvalidStatus) as rejected:
        async with connect(server.url(endpoint, "reject=1")):
            pass
    assert rejected.value.response.status_code == 403


@pytest.mark.parametrize(
    ("query", "offered", "chosen"),
    [
        ("subprotocol=b", ["a", "b"], "b"),
        ("", ["a", "b"], "a"),
        ("subprotocol=zzz", ["a", "b"], "a"),
        ("", None, None),
    ],
)
async def test_accepts_with_the_asked_subprotocol_if_offered_else_the_first(
    server, endpoint, query, offered, chosen
):
    async with connect(server.url(endpoint, query), subprotocols=offered) as ws:
        assert ws.subprotocol == chosen


@pytest.mark.parametrize("command", ["/close abc", "/close 1001", "/close 4000 " + "é" * 62, "/nope"])
async def test_malformed_command_gets_an_error_and_the_connection_stays_open(server, endpoint, command):
    async with connect(server.url(endpoint)) as ws:
        await ws.send(command)
        assert (await ws.recv()).startswith("error: ")
        await ws.send("still open")
        assert await ws.recv() == "still open"


async def test_exception_in_a_handler_closes_only_that_connection_with_1011(server, endpoint):
    async with connect(server.url(endpoint)) as healthy, connect(server.url(endpoint)) as failing:
        await failing.send("/raise")
        assert await closed_code(failing) == 1011
        await healthy.send("still here")
        assert await healthy.recv() == "still here"
        connection = server.connection_of(client_port(failing))
    [error] = [m for m in server.trace_of(connection, until_kind="error") if m["kind"] == "error"]
    assert "consumer raised DeliberateError; the server closes the connection with 1011" in error["rest"]


async def test_exception_before_accept_is_an_http_500(server, endpoint):
    with pytest.raises(InvalidStatus) as failed:
        async with connect(server.url(endpoint, "raise=1")):
            pass
    assert failed.value.response.status_code == 500
    async with connect(server.url(endpoint)) as ws:  # the server is fine
        await ws.send("after")
        assert await ws.recv() == "after"


async def test_trace_shows_a_real_session_in_order(server, endpoint):
    async with connect(
        server.url(endpoint),
        additional_headers={"Cookie": "sessionid=wire-s3cr3t", "Authorization": "Bearer wire-s3cr3t"},
    ) as ws:
        await ws.send("x" * 1000)
        await ws.recv()
        connection = server.connection_of(client_port(ws))
    lines = server.trace_of(connection)
    assert connection.startswith(f"{endpoint}#")
    assert [(m["arrow"], m["kind"]) for m in lines] == [
        ("●", "scope"),
        ("→", "in"),
        ("←", "out"),
        ("✓", "done"),
        ("→", "in"),
        ("←", "out"),
        ("✓", "done"),
        ("→", "in"),
        ("✓", "done"),
        ("■", "exit"),
    ]
    assert [m["rest"].split()[0] for m in lines if m["kind"] in ("in", "out")] == [
        "websocket.connect",
        "websocket.accept",
        "websocket.receive",
        "websocket.send",
        "websocket.disconnect",
    ]
    text = "\n".join(m.string for m in lines)
    assert "wire-s3cr3t" not in text
    assert "('cookie', <redacted>)" in text and "('authorization', <redacted>)" in text
    assert "('sec-websocket-key', <redacted>)" in text
    assert f"'text': '{'x' * 64}'…<1,000 chars>" in text  # the server runs with MAX_PAYLOAD=64
    thread = {"sc": "[ThreadPoolExecutor-", "ac": "[MainThread]"}[endpoint]
    assert all(thread in m["rest"] for m in lines if m["kind"] in ("in", "out"))


async def test_a_browser_origin_that_is_not_an_allowed_host_is_refused(server, endpoint):
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.url(endpoint), origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with connect(server.url(endpoint), origin=f"http://127.0.0.1:{server.port}") as ws:
        await ws.send("allowed")
        assert await ws.recv() == "allowed"
