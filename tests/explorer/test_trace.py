"""The trace of real consumer sessions: what appears, in which order, and what never does."""

import asyncio
import gc
import io
import logging
import os
import re
import threading

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from rich.cells import cell_len
from rich.console import Console

from explorer.asgi import application
from explorer.trace.handlers import QueuedTraceHandler
from tests.conftest import untimed

TRACE = {"MODE": "compact", "MAX_PAYLOAD": 200, "SHOW_CREDENTIALS": False, "QUEUE_SIZE": 10_000}
SECRETS = {
    b"cookie": b"sessionid=s3cr3t-cookie; csrftoken=s3cr3t-csrf",
    b"authorization": b"Bearer s3cr3t-token",
    b"proxy-authorization": b"Basic s3cr3t-proxy",
    b"sec-websocket-key": b"s3cr3t-nonce==",
}


def communicator(endpoint, query="", headers=None, **kwargs):
    path = f"/ws/{endpoint}/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, headers=headers, **kwargs)


async def session(endpoint, *texts, query="", headers=None):
    client = communicator(endpoint, query, headers)
    await client.connect()
    for text in texts:
        await client.send_to(text_data=text)
        await client.receive_output()
    await client.disconnect()


def connections(trace):
    return list(dict.fromkeys(m["connection"] for m in trace.parsed()))


async def test_scope_then_each_event_in_order_with_direction_and_connection_id(endpoint, trace):
    await session(endpoint, "hello")
    [connection] = connections(trace)
    assert connection.startswith(f"{endpoint}#")
    lines = [
        (m["arrow"], m["kind"], m["rest"].split()[0] if m["kind"] in ("in", "out", "done") else "")
        for m in trace.parsed()
    ]
    assert lines == [
        ("●", "scope", ""),
        ("→", "in", "websocket.connect"),
        ("←", "out", "websocket.accept"),
        ("✓", "done", "websocket.connect"),
        ("→", "in", "websocket.receive"),
        ("←", "out", "websocket.send"),
        ("✓", "done", "websocket.receive"),
        ("→", "in", "websocket.disconnect"),
        ("✓", "done", "websocket.disconnect"),
        ("■", "exit", ""),
    ]
    receive, send = trace.parsed()[4:6]
    assert receive["rest"].endswith("{'text': 'hello'}")
    assert send["rest"].endswith("{'text': 'hello'}")
    seconds = [float(m["seconds"]) for m in trace.parsed()]
    assert seconds == sorted(seconds)


async def test_each_connection_has_its_own_id(endpoint, trace):
    await session(endpoint, "one")
    await session(endpoint, "two")
    first, second = connections(trace)
    assert first != second
    assert trace.parsed(second)[0]["kind"] == "scope"


async def test_events_show_the_thread_their_handler_ran_on(endpoint, trace):
    await session(endpoint, "hello")
    threads = {m["rest"].split("[")[1].split("]")[0] for m in trace.parsed() if m["kind"] in ("in", "out")}
    loop_thread = threading.main_thread().name  # pytest-asyncio runs the loop here
    if endpoint == "ac":
        assert threads == {loop_thread}
    else:
        [worker] = threads
        assert worker != loop_thread and worker.startswith("ThreadPoolExecutor")


async def test_credentials_are_redacted_in_headers_cookies_and_session(endpoint, trace):
    await session(endpoint, headers=list(SECRETS.items()))
    text = trace.text()
    assert "s3cr3t" not in text
    for name in SECRETS:
        assert f"('{name.decode()}', <redacted>)" in text
    assert "'cookies': {'sessionid': <redacted>, 'csrftoken': <redacted>}" in text
    assert "'session': <redacted>" in text


async def test_credentials_are_shown_when_the_setting_says_so(endpoint, trace):
    with override_settings(EXPLORER_TRACE={**TRACE, "SHOW_CREDENTIALS": True}):
        await session(endpoint, headers=list(SECRETS.items()))
    text = trace.text()
    assert "('authorization', 'Bearer s3cr3t-token')" in text
    assert "'sessionid': 's3cr3t-cookie'" in text
    assert "<redacted>" not in text


@pytest.mark.parametrize("limit", [10, 200])
async def test_long_payloads_are_shortened_with_their_full_length(endpoint, trace, limit):
    payload = "x" * 5000
    with override_settings(EXPLORER_TRACE={**TRACE, "MAX_PAYLOAD": limit}):
        client = communicator(endpoint)
        await client.connect()
        await client.send_to(text_data=payload)
        await client.receive_output()
        await client.send_to(bytes_data=b"\x01" * 3000)
        await client.receive_output()
        await client.disconnect()
    text = trace.text()
    assert payload not in text
    assert f"{{'text': '{'x' * limit}'…<5,000 chars>}}" in text
    head = b"\x01" * limit
    assert f"{{'bytes': {head!r}…<3,000 bytes>}}" in text


async def test_full_mode_pretty_prints_each_dict(endpoint, trace):
    with override_settings(EXPLORER_TRACE={**TRACE, "MODE": "full"}):
        await session(endpoint, "hello")
    lines = trace.lines()
    receive = next(i for i, line in enumerate(lines) if "→ in     websocket.receive" in line)
    # The header line, then the whole dict, type and all, indented below it.
    assert lines[receive + 1].strip() == "{'type': 'websocket.receive', 'text': 'hello'}"
    # The scope is long enough to be spread over one line per key.
    assert any(line.strip(" │") == f"'path': '/ws/{endpoint}/'," for line in lines[:receive])


async def test_off_mode_traces_nothing(endpoint, trace):
    with override_settings(EXPLORER_TRACE={**TRACE, "MODE": "off"}):
        await session(endpoint, "hello")
    assert trace.text() == ""


async def test_logging_configuration_can_silence_it(endpoint, trace):
    logger = logging.getLogger("explorer.trace")
    logger.setLevel(logging.WARNING)
    try:
        await session(endpoint, "hello")
    finally:
        logger.setLevel(logging.INFO)
    assert trace.text() == ""


async def test_logging_routes_it_to_any_handler_with_the_usual_fields(endpoint, trace):
    """Trace records are made without LogRecord's own lookups: a stdlib formatter still finds
    every field it knows, with the event's moment and its handler's thread."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s|%(msecs)d|%(relativeCreated)d|%(name)s|%(levelname)s|%(process)d|%(processName)s"
            "|%(thread)s|%(threadName)s|%(filename)s|%(module)s|%(funcName)s|%(lineno)d|%(message)s"
        )
    )
    logger = logging.getLogger("explorer.trace")
    logger.addHandler(handler)
    try:
        await session(endpoint, "hello")
    finally:
        logger.removeHandler(handler)
    lines = [line.split("|") for line in stream.getvalue().splitlines()]
    receive = [fields for fields in lines if fields[-1].endswith(" in websocket.receive")]
    assert len(receive) == 1
    fields = receive[0]
    assert fields[3:7] == ["explorer.trace", "INFO", str(os.getpid()), "MainProcess"]
    thread = "ThreadPoolExecutor" if endpoint == "sc" else threading.main_thread().name
    assert fields[8].startswith(thread)
    assert fields[-1].startswith(f"{endpoint}#")
    assert [record["kind"] for record in trace.records()][:2] == ["scope", "in"]  # and the trace's own


def what_was_traced(records):
    """Each record of one connection but its name, its clock and what the machine's load changes
    (a wait, or a step that held the loop, long enough to be noted): what the two ways out must agree on."""
    moving = {
        "connection",
        "seconds",
        "at",
        "run",
        "wait",
        "handler",
        "thread",
        "slow",
        "held_by",
        "held_loop",
        "notes",
    }
    return [
        {
            **{key: value for key, value in record.items() if key not in moving},
            "notes": untimed(record.get("notes", ())),
        }
        for record in records
    ]


async def test_alone_on_its_logger_the_trace_queues_its_entries_and_says_the_same(endpoint, tmp_path):
    """With no other handler configured, the queue takes each entry's values as they are: no entry and
    no logging record are made on the consumer's path. The recording says exactly what it says through
    logging."""
    from tests.conftest import TraceCapture

    logger = logging.getLogger("explorer.trace")
    said = {}
    for route in ("alone", "through logging"):
        capture = TraceCapture(tmp_path / f"{route}.jsonl")
        queued = []
        enqueue = capture.handler.enqueue

        def noting(item, weight, usual=False, queued=queued, enqueue=enqueue):
            queued.append(type(item))
            enqueue(item, weight, usual)

        capture.handler.enqueue = noting
        others = logger.handlers[:]
        logger.handlers = [capture.handler] if route == "alone" else [capture.handler, logging.NullHandler()]
        try:
            await session(endpoint, "hello", "/help")
        finally:
            logger.handlers = others
        said[route] = what_was_traced(capture.records())
        capture.handler.close()
        if route == "alone":
            assert set(queued) == {tuple}
        else:
            assert tuple not in queued and queued
    assert [record["kind"] for record in said["alone"]][:3] == ["scope", "in", "out"]
    assert said["alone"] == said["through logging"]


@pytest.mark.parametrize("mode", ["compact", "full"])
async def test_client_text_is_shown_literally_never_as_markup_or_escapes(endpoint, trace, mode):
    hostile = "[bold red]boom[/] [link=http://x]y[/link] \x1b[2J\x1b]8;;http://x\x07z\r\x08"
    with override_settings(EXPLORER_TRACE={**TRACE, "MODE": mode}):
        await session(endpoint, hostile, headers=[(b"user-agent", b"\x1b[31mua")])
    text = trace.text()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\x08" not in text
    assert "[bold red]boom[/] [link=http://x]y[/link] \\x1b[2J\\x1b]8;;http://x\\x07z\\r\\x08" in text
    assert "\\x1b[31mua" in text


BEARER = "base64url.bearer.authorization.k8s.io.c2VjcmV0LXRva2Vu"
BY_NAME = [(b"x-api-key", b"s3cr3t-key"), (b"x-auth-token", b"s3cr3t-auth")]


async def test_credentials_by_name_and_in_subprotocols_stay_out_of_console_recording_and_scope(
    endpoint, trace
):
    client = WebsocketCommunicator(
        application,
        f"/ws/{endpoint}/?token=s3cr3t-q&access_token=s3cr3t-a&page=2",
        headers=[*BY_NAME, (b"sec-websocket-protocol", f"{BEARER}, chat".encode())],
        subprotocols=[BEARER, "chat"],
    )
    connected, chosen = await client.connect()
    assert connected and chosen == BEARER  # the explorer accepts the first offered: it echoes the token
    await client.send_to(text_data="/scope")
    reply = await client.receive_from()
    await client.disconnect()
    recording = trace.flushed().read_text()
    for where in (trace.text(), recording, reply):
        assert "s3cr3t" not in where and "c2VjcmV0LXRva2Vu" not in where
    assert "token=<redacted>&access_token=<redacted>&page=2" in trace.text()
    assert "('x-api-key', <redacted>)" in trace.text() and "('x-auth-token', <redacted>)" in trace.text()
    assert "'subprotocol': 'base64url.bearer.authorization.k8s.io.<redacted>'" in trace.text()
    assert '"base64url.bearer.authorization.k8s.io.<redacted>"' in reply


async def test_credentials_inside_a_message_stay_out_of_console_and_recording(endpoint, trace):
    """A login message carries its password in the text (JSON, or name=value as in a form): the value
    of any field whose name is a credential's is hidden, the rest of the message shown as it was."""
    login = '{"user": "ann", "password": "s3cr3t-pw", "api_key": 12345, "nested": {"token": "s3cr3t-tk"}}'
    form = "login pwd=s3cr3t-form&next=/home"
    await session(endpoint, login, form)
    recording = trace.flushed().read_text()
    for where in (trace.text(), recording):
        assert "s3cr3t" not in where and "12345" not in where
    text = trace.text()
    assert '"user": "ann", "password": "<redacted>", "api_key": "<redacted>"' in text
    assert '"nested": {"token": "<redacted>"}' in text
    assert "login pwd=<redacted>&next=/home" in text


async def test_credentials_however_a_message_writes_them_stay_out_of_console_and_recording(endpoint, trace):
    """A credential field's value is hidden whatever it is (a list, an object), however its name is
    written (an escape in JSON, Python's quotes, percent-encoded in a form, a header's line), and a URL's
    credential parameter inside a header's value or inside another parameter's."""
    messages = [
        '{"password": ["s3cr3t-list", 1], "note": "kept"}',
        '{"token": {"value": "s3cr3t-object", "nested": [{"a": "s3cr3t-deep"}]}, "note": "kept"}',
        '{"\\u0070assword": "s3cr3t-escaped"}',
        "{'password': 's3cr3t-python', 'note': 'kept'}",
        "login p%61ssword=s3cr3t-percent&next=kept",
        "GET / HTTP/1.1\nAuthorization: Bearer s3cr3t-header\nAccept: kept",
    ]
    await session(
        endpoint,
        *messages,
        query="next=%2Fhome%3Ftoken%3Ds3cr3t-next&page=2",
        headers=[(b"referer", b"http://127.0.0.1:8000/?page=1&access_token=s3cr3t-referer")],
    )
    for where in (trace.text(), trace.flushed().read_text()):
        assert "s3cr3t" not in where
    text = trace.text()
    assert text.count("kept") >= 2 * 5  # in and out: what names no credential is shown as it was
    assert "{'password': '<redacted>', 'note': 'kept'}" in text
    assert "page=1&access_token=<redacted>" in text and "next=<redacted>&page=2" in text


async def test_a_close_reason_keeps_its_credentials_out_of_console_and_recording(endpoint, trace):
    """The reason of the application's close, and of the client's disconnect (servers pass it on from
    ASGI spec 2.3), are the client's words and the application's: read like a message's text."""
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/close 4000 password=s3cr3t-close")
    assert (await client.receive_output())["reason"] == "password=s3cr3t-close"  # the client gets it as sent
    await client.wait()
    other = communicator(endpoint)
    await other.connect()
    await other.send_input({"type": "websocket.disconnect", "code": 4001, "reason": "token=s3cr3t-gone"})
    await other.wait()
    for where in (trace.text(), trace.flushed().read_text()):
        assert "s3cr3t" not in where
    assert "password=<redacted>" in trace.text() and "token=<redacted>" in trace.text()


@pytest.mark.usefixtures("database")  # /say keeps what it says, for /history
async def test_credentials_inside_a_room_message_stay_out_of_the_trace(endpoint, trace):
    await session(endpoint, "/join lobby", '/say lobby {"token": "s3cr3t-room"}')
    assert "s3cr3t" not in trace.text() and "s3cr3t" not in trace.flushed().read_text()
    layer = [r for r in trace.records() if r["kind"] == "layer" and r["event"].get("type") == "group_send"]
    assert layer and '{"token": "<redacted>"}' in str(layer[0]["event"]["message"])


@pytest.mark.usefixtures("database")  # /say keeps what it says, for /history
async def test_a_room_message_is_cut_and_weighed_as_it_is_traced_like_any_event(endpoint, monkeypatch):
    """What a consumer sends through the channel layer is whatever the application put in it: its line
    holds it cut to what the trace shows, and the queue counts what that holds (the layer's lines once
    held the whole message, counted as nothing, in the queue and the page's recent records)."""
    from explorer.trace.config import trace_config
    from explorer.trace.connection import ConnectionTrace
    from explorer.trace.entry import entry_of

    delivered = []
    monkeypatch.setattr(
        ConnectionTrace, "deliver", staticmethod(lambda values, _, weight: delivered.append((values, weight)))
    )
    said = "x" * 4000
    await session(endpoint, "/join lobby", f"/say lobby {said}")
    [(values, weight)] = [
        (values, weight)
        for values, weight in delivered
        if (entry := entry_of(values)).kind == "layer" and entry.event["type"] == "group_send"
    ]
    text = entry_of(values).event["message"]["text"]  # a Shortened: its start, and how long it was
    limit = trace_config().max_payload
    assert (text.head, text.length) == (said[:limit], len(said))
    assert weight >= limit


async def test_password_names_and_query_separators_that_hide_a_credential_too(endpoint, trace):
    await session(
        endpoint,
        query="pass=s3cr3t-1&pwd=s3cr3t-2&x=1;token=s3cr3t-3&page=2",
        headers=[(b"x-pwd", b"s3cr3t-4"), (b"x-pass", b"s3cr3t-5")],
    )
    text = trace.text()
    assert "s3cr3t" not in text
    assert "pass=<redacted>&pwd=<redacted>&x=1;token=<redacted>&page=2" in text


async def test_the_last_line_says_which_violations_are_the_servers(endpoint, trace):
    """granian gives the ports as str: the scope breaks a rule, not the consumer; its last line says so."""
    client = communicator(endpoint)
    client.scope["server"] = ("127.0.0.1", "8000")  # before the application has read its scope
    await client.connect()
    await client.send_to(text_data="hello")
    await client.receive_from()
    await client.disconnect()
    [exit_line] = [m for m in trace.parsed() if m["kind"] == "exit"]
    assert exit_line["rest"].endswith("1 ASGI rule violation, by the server")


async def test_the_credential_names_are_a_setting(endpoint, trace):
    with override_settings(EXPLORER_TRACE={"CREDENTIALS": [r"^x-tenant$"]}):
        await session(endpoint, query="", headers=[(b"x-tenant", b"acme-s3cr3t"), (b"x-api-key", b"visible")])
    text = trace.text()
    assert "('x-tenant', <redacted>)" in text
    assert "('x-api-key', 'visible')" in text  # the setting replaces the default list


async def test_a_cancelled_consumer_keeps_the_order_true(endpoint, trace):
    """Cancelled while its handler runs: an async handler is cancelled with it; a sync one cannot be,
    and what it does afterwards is traced after the exit, marked as coming after the consumer's end."""
    client = communicator(endpoint, "delay=0.5")
    with pytest.raises(asyncio.TimeoutError):
        await client.connect(timeout=0.1)  # the harness cancels the application on a timeout
    records = await until(trace, lambda records: endpoint == "ac" or records[-1]["kind"] == "done")
    kinds = [record["kind"] for record in records]
    exit_at = kinds.index("exit")
    assert records[exit_at]["note"].startswith("consumer cancelled")
    if endpoint == "ac":
        assert kinds[exit_at:] == ["exit"]
        [done] = [record for record in records if record["kind"] == "done"]
        assert done["outcome"] == "cancelled"
    else:
        assert "its sync handler for websocket.connect still runs" in records[exit_at]["notes"][0]
        late = records[exit_at + 1 :]
        assert [(r["kind"], r["event"]["type"]) for r in late] == [
            ("out", "websocket.accept"),
            ("done", "websocket.connect"),
        ]
        assert all(r["notes"][0].startswith("after the consumer ended (cancelled)") for r in late)


async def until(trace, ready, timeout=5):
    """The recording's records once ``ready(records)`` holds, the last one an exit or later."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        records = trace.records()
        if records and "exit" in [r["kind"] for r in records] and ready(records):
            return records
        assert asyncio.get_running_loop().time() < deadline, records
        await asyncio.sleep(0.05)


@pytest.fixture(params=[60, 80])
def narrow_terminal(request):
    """The trace on a terminal ``request.param`` columns wide, through the real queue and listener."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=request.param, force_terminal=True, color_system=None, markup=False, emoji=False
    )
    handler = QueuedTraceHandler(queue_size=10_000, console=console)
    logger = logging.getLogger("explorer.trace")
    logger.addHandler(handler)
    yield request.param, buffer, handler
    logger.removeHandler(handler)
    handler.close()


# A token the terminal must not split: a duration, a thread, a connection's name.
TOKENS = re.compile(r"wait \d[\d.]*(µs|ms|s)|handler \d[\d.]*(µs|ms|s)|\[[\w-]+\]")


@pytest.mark.parametrize("mode", ["compact", "full"])
async def test_on_a_narrow_terminal_lines_fit_and_tokens_stay_whole(endpoint, narrow_terminal, mode):
    width, buffer, handler = narrow_terminal
    with override_settings(EXPLORER_TRACE={**TRACE, "MODE": mode}):
        await session(endpoint, "x" * 500, "/close 4000 " + "bye " * 20, query="header=X-Long:" + "v" * 90)
    handler.flush()
    lines = buffer.getvalue().splitlines()
    assert all(cell_len(line) <= width for line in lines), [line for line in lines if cell_len(line) > width]
    text = "\n".join(lines)
    # Every duration and thread is on one line: the words of each were printed together.
    assert len(TOKENS.findall(text)) >= 6
    assert not re.search(r"(wait|handler)\s*\n", text)
    if mode == "compact":
        payloads = [line for line in lines if "'xxxx" in line]  # the message in, and its echo out
        assert len(payloads) == 2 and all(line.endswith("…") for line in payloads)  # shortened to fit
        [scope] = [i for i, line in enumerate(lines) if "● scope" in line]
        folded = " ".join(lines[scope : scope + 6])
        assert "path='/ws/" in folded and re.search(r"\+\d+ more:\s+type, headers", folded)
        assert "sec-websocket-key" not in text  # headers are among the rest, shown in full mode


def on_a_cycle(garbage):
    """Those of ``garbage`` (the collector's, saved) that are on a reference cycle: each reaches itself.
    Merely being held by a cycle (as a frame's local is by a traceback's) is not being on one."""
    ids = {id(thing) for thing in garbage}

    def reaches_itself(start):
        seen, frontier = set(), [start]
        while frontier:
            for referent in gc.get_referents(frontier.pop()):
                if referent is start:
                    return True
                if id(referent) in ids and id(referent) not in seen:
                    seen.add(id(referent))
                    frontier.append(referent)
        return False

    return [thing for thing in garbage if reaches_itself(thing)]


async def test_a_traced_connection_makes_no_reference_cycle_for_the_garbage_collector(endpoint, trace):
    # A cycle per connection is freed only by the collector: it runs every few connections, and
    # whatever is alive then is promoted, until full collections of the whole heap follow.
    await session(endpoint, "hello")  # a first connection sets up what stays (caches, the layer)
    trace.handler.flush()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await session(endpoint, "hello")
        trace.handler.flush()
        gc.collect()
        cycles = on_a_cycle(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    traces_own = [
        type(thing).__qualname__ for thing in cycles if type(thing).__module__.startswith("explorer.trace")
    ]
    assert traces_own == []
