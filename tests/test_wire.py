"""On the wire: a real daphne process serving the explorer, driven by the websockets client.

These show what a client really gets, which is not always what the event
asked for: daphne 4.2 does not put a websocket.close reason on the wire.
"""

import asyncio
import contextlib
import json
import signal
import socket
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from explorer.serving import gone
from tests.conftest import WIRE_ENV, DaphneServer, rules_broken


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


@pytest.mark.parametrize("path", ["/ws/{endpoint}", "/ws/{endpoint}/x/", "/nope"])
async def test_a_path_with_no_endpoint_is_refused_with_403_and_no_traceback(server, endpoint, path):
    """channels' URLRouter raises ValueError for a path it has no route for: the server answered 500
    and logged a traceback for every such knock, which a client could flood its console with."""
    url = f"ws://127.0.0.1:{server.port}{path.format(endpoint=endpoint)}"
    logged_before = len(server.lines)  # the server is shared: what earlier tests made it log is theirs
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 403
    server.wait_for(r"no WebSocket endpoint at '")
    async with connect(server.url(endpoint)) as ws:  # and the endpoint itself still answers
        await ws.send("after")
        assert await ws.recv() == "after"
    logged = server.lines[logged_before:]
    assert not [line for line in logged if "Traceback" in line or "No route found" in line]


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


async def test_what_a_client_sends_while_its_handler_runs_is_held_to_a_budget(server, endpoint):
    """daphne queued every message for the application without limit: while a handler ran (/sleep), a
    client made the server hold whatever it sent. Past 16 MiB unread it is closed with 1008."""
    async with connect(server.url(endpoint)) as flooding, connect(server.url(endpoint)) as neighbour:
        await flooding.send("/sleep 3")
        megabyte = "x" * 1_000_000  # under daphne's 1 MiB message limit
        with contextlib.suppress(ConnectionClosed):
            for _ in range(40):
                await flooding.send(megabyte)
        assert await closed_code(flooding) == 1008
        assert flooding.close_reason == "more than 16 MiB sent that the application has not read"
        await neighbour.send("still here")
        assert await neighbour.recv() == "still here"


async def test_exception_in_a_handler_closes_only_that_connection_with_1011(server, endpoint):
    async with connect(server.url(endpoint)) as healthy, connect(server.url(endpoint)) as failing:
        await failing.send("/raise")
        assert await closed_code(failing) == 1011
        await healthy.send("still here")
        assert await healthy.recv() == "still here"
        connection = server.connection_of(client_port(failing))
    [error] = [m for m in server.trace_of(connection, until_kind="error") if m["kind"] == "error"]
    assert "consumer raised DeliberateError at consumers/" in error["rest"]
    assert ": /raise: an exception in the handler; daphne closes the connection with 1011" in error["rest"]


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
    url, tag = server.url_with_tag(endpoint)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    # Refused, and traced as such: who knocked, why not, and what the client got.
    connection = server.connection_tagged(tag)
    assert connection.startswith("WebsocketDenier#")  # channels' own denier, traced
    records = server.records_of(connection)
    assert records[0]["event"]["path"] == f"/ws/{endpoint}/"
    [note] = [r for r in records if r["kind"] == "note"]
    assert note["note"].startswith(
        f"origin 'http://evil.example' is not this page's ('127.0.0.1:{server.port}')"
    )
    [close] = [r for r in records if r["kind"] == "out"]
    assert close["event"] == {"type": "websocket.close"}
    assert any("HTTP 403" in n for n in close["notes"])
    assert records[-1]["note"] == "consumer returned; no ASGI rule broken"
    async with connect(server.url(endpoint), origin=f"http://127.0.0.1:{server.port}") as ws:
        await ws.send("allowed")
        assert await ws.recv() == "allowed"


async def test_a_refused_origins_credentials_stay_out_of_its_note(server, endpoint):
    """The note that says which origin was refused hides its credentials as the scope's Origin header
    does: a query's token, a URL's userinfo."""
    url, tag = server.url_with_tag(endpoint)
    with pytest.raises(InvalidStatus):
        async with connect(url, origin="http://user:pw-s3cr3t@evil.example/?token=S3CR3T-o1&page=2"):
            pass
    records = server.records_of(server.connection_tagged(tag))
    [note] = [r for r in records if r["kind"] == "note"]
    assert note["note"].startswith("origin 'http://<redacted>@evil.example/?token=<redacted>&page=2' is not")
    assert not any("s3cr3t" in line.lower() for line in server.lines)
    assert "s3cr3t" not in server.recording.read_text().lower()


async def test_commands_through_a_real_daphne(server, endpoint):
    async with connect(server.url(endpoint), additional_headers={"Cookie": "sessionid=wire-s3cr3t"}) as ws:
        await ws.send("/whoami")
        whoami = json.loads(await ws.recv())
        assert whoami["event_loop_thread"] is (endpoint == "ac")
        expected_thread = {"ac": "MainThread", "sc": "ThreadPoolExecutor-0_0"}[endpoint]
        assert whoami["thread"] == expected_thread
        await ws.send("/scope")
        scope = json.loads(await ws.recv())
        assert scope["client"] == ["127.0.0.1", client_port(ws)]
        assert ["cookie", "<redacted>"] in scope["headers"]
        await ws.send("/bytes héllo")
        assert await ws.recv() == "héllo".encode()
        # Well within a burst's free stretch (BURST_FREE) on a busy machine too: past it, the connection
        # would have to rest before the /sleep below (100 took 61 ms on sc idle, 171 beside two busy loops).
        await ws.send("/burst 20 1000")
        burst = [await ws.recv() for _ in range(20)]
        assert [text.split()[0] for text in burst] == [f"{n}/20" for n in range(1, 21)]
        assert {len(text) for text in burst} == {1000}
        await ws.send("/sleep 0.1")
        assert await ws.recv() == "slept 0.1 s"
        await asyncio.sleep(0.2)  # a connection rests as long as it held before it holds again
        await ws.send("/block 0.1")
        assert await ws.recv() == "blocked 0.1 s"
        await ws.send("/burst 10001")
        assert await ws.recv() == "error: /burst N must be a whole number from 1 to 10,000, got '10001'"
        connection = server.connection_of(client_port(ws))
    records = server.records_of(connection)
    assert rules_broken(records) == []
    assert "wire-s3cr3t" not in json.dumps(records)


async def test_delay_and_header_options_through_a_real_daphne(server, endpoint):
    # Found by a tag, not by its client port: late in a long run the kernel hands out a port again, and
    # an earlier connection's scope line with it matched first (CI saw a 1 ms handler for a 0.2 s delay).
    url, tag = server.url_with_tag(endpoint, "delay=0.2&header=X-Explorer:yes&header=bad")
    async with connect(url) as ws:
        assert await ws.recv() == "error: header must be NAME:VALUE with NAME an HTTP token, got 'bad'"
    records = server.records_of(server.connection_tagged(tag))
    [connect_done] = [r for r in records if r["kind"] == "done" and r["event"]["type"] == "websocket.connect"]
    assert connect_done["handler"] >= 0.2  # the delay is spent in the connect handler


async def test_a_killed_server_leaves_a_recording_of_whole_lines(tmp_path, endpoint):
    recording = tmp_path / "trace.jsonl"
    daphne = DaphneServer(recording, **WIRE_ENV)
    try:
        async with connect(daphne.url(endpoint)) as ws:
            await ws.send("/burst 2000 100")
            for _ in range(2000):
                await ws.recv()
            # Killed while the listener is still writing the burst's records; the renderer
            # process writes out what it was sent, then ends.
            renderer = daphne.renderer_pid
            daphne.process.send_signal(signal.SIGKILL)
            daphne.process.wait(timeout=10)
    except ConnectionClosed:
        pass
    finally:
        daphne.stop()
    assert renderer is not None and gone(renderer, timeout=60)
    data = recording.read_bytes()
    assert data.endswith(b"\n")
    records = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    # The run's header, the server named once from the first connection, then that connection's scope.
    assert [r["kind"] for r in records[:3]] == ["run", "server", "scope"]
    assert records[0]["run"] == 1 and records[0]["command"].endswith("explorer.asgi:application")
    assert records[1]["note"].startswith("daphne 4.2.")
    assert len(records) > 10


def http_get(server, path):
    """The status line and headers of a raw GET: the path sent as it is, ``..`` and all."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
    return head.splitlines()[0], head.lower()


@pytest.mark.parametrize("path", ["/static/../explorer/settings.py", "/static/%2e%2e/explorer/settings.py"])
def test_a_path_out_of_the_static_files_is_a_404_not_a_500(server, path):
    start = len(server.lines)
    status, _ = http_get(server, path)
    assert status.split()[1] == "404", status
    time.sleep(0.2)
    said = server.lines[start:]
    assert not [line for line in said if "SuspiciousFileOperation" in line or "Traceback" in line], said


def test_the_page_cannot_be_framed(server):
    status, head = http_get(server, "/")
    assert status.split()[1] == "200"
    assert "x-frame-options: deny" in head
