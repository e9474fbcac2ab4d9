"""Each ASGI WebSocket rule, broken on purpose by a test-only consumer, shows at the event that broke it.

The consumers are in ``tests/rule_breakers.py``; ``WebsocketCommunicator``
plays the server, so a test can also send what daphne never would (a receive
before connect, a disconnect without an int code, an odd scope).
"""

import contextlib

import pytest
from channels.testing import WebsocketCommunicator

from explorer.asgi import application as explorer_application
from explorer.trace.rules import RULES
from tests.conftest import notes_of, rules_broken, untimed
from tests.rule_breakers import application as rule_breakers

ACCEPTED_SCRIPTS = {
    # script: (rule, the event type it breaks at)
    "accept-twice": ("state.accept-twice", "websocket.accept"),
    "both-payloads": ("send.payload", "websocket.send"),
    "no-payload": ("send.payload", "websocket.send"),
    "text-not-str": ("send.payload", "websocket.send"),
    "empty-text-and-bytes": ("send.payload", "websocket.send"),
    "unknown-type": ("event.type", "websocket.message"),
    "no-type": ("event.type", None),
    "subprotocol-not-offered": ("accept.subprotocol", "websocket.accept"),
    "subprotocol-not-str": ("accept.subprotocol", "websocket.accept"),
    "headers-not-bytes": ("accept.headers", "websocket.accept"),
    "headers-uppercase": ("accept.headers", "websocket.accept"),
    "headers-subprotocol": ("accept.headers", "websocket.accept"),
    "close-code-str": ("close.code", "websocket.close"),
    "close-code-never-sent": ("close.code", "websocket.close"),
    "close-reason-long": ("close.reason", "websocket.close"),
    "close-reason-bytes": ("close.reason", "websocket.close"),
    "send-after-close": ("state.after-close", "websocket.send"),
}


def communicator(endpoint, script, app=rule_breakers, **kwargs):
    return WebsocketCommunicator(app, f"/ws/{endpoint}/?script={script}", **kwargs)


async def run(client, *inputs):
    """Connect, feed extra server events, disconnect, and let the consumer finish however it does."""
    await client.send_input({"type": "websocket.connect"})
    for event in inputs:
        await client.send_input(event)
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    # A consumer that breaks the rules may well fail; the trace says so.
    with contextlib.suppress(Exception):
        await client.wait(timeout=2)


def the_one_connection(trace):
    [connection] = {record["connection"] for record in trace.records()}
    return trace.records(connection)


def breaking(records, rule):
    return [r for r in records if any(v["rule"] == rule for v in r.get("violations", ()))]


@pytest.mark.parametrize("script", sorted(ACCEPTED_SCRIPTS))
async def test_the_rule_is_reported_at_the_event_that_broke_it(endpoint, trace, script):
    rule, event_type = ACCEPTED_SCRIPTS[script]
    await run(communicator(endpoint, script))
    records = the_one_connection(trace)
    [record] = breaking(records, rule)
    assert record["kind"] == "out"
    assert record["event"].get("type") == event_type
    [violation] = [v for v in record["violations"] if v["rule"] == rule]
    assert violation["hint"] == RULES[rule][1]
    assert violation["problem"]
    # The console shows it under the event, with its hint.
    text = trace.text()
    assert f"⚠ {rule} {violation['problem']} (hint: " in text


async def test_send_before_accept(endpoint, trace):
    await run(communicator(endpoint, "send-before-accept"))
    assert rules_broken(the_one_connection(trace)) == ["state.send-before-accept"]


async def test_send_after_disconnect(endpoint, trace):
    await run(communicator(endpoint, "send-after-disconnect"))
    records = the_one_connection(trace)
    [record] = breaking(records, "state.after-disconnect")
    assert record["kind"] == "out" and record["event"]["text"] == "nobody is listening"


async def test_accept_before_connect_and_an_event_before_connect(endpoint, trace):
    client = communicator(endpoint, "accept-on-receive")
    await client.send_input({"type": "websocket.receive", "text": "too soon"})
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await client.wait(timeout=2)
    records = the_one_connection(trace)
    assert [(r["kind"], v["rule"]) for r in records for v in r.get("violations", ())] == [
        ("in", "state.connect-first"),
        ("out", "state.accept-before-connect"),
        ("in", "state.connect-first"),
    ]


@pytest.mark.parametrize(
    ("event", "rule"),
    [
        ({"type": "websocket.receive"}, "receive.payload"),
        ({"type": "websocket.receive", "text": "a", "bytes": b"b"}, "receive.payload"),
        ({"type": "websocket.receive", "bytes": "not bytes"}, "receive.payload"),
        ({"type": "websocket.connect"}, "state.connect-first"),
        ({"type": "websocket.disconnect", "code": "going"}, "disconnect.code"),
        ({"type": "websocket.bogus"}, "event.type"),
    ],
)
async def test_what_the_server_sends_is_checked_too(endpoint, trace, event, rule):
    await run(communicator(endpoint, "accept"), event)
    records = the_one_connection(trace)
    [record] = breaking(records, rule)
    assert record["kind"] == "in"


def mangled(app, **changes):
    async def mangling(scope, receive, send):
        scope = {**scope, **changes}
        for key in [key for key, value in changes.items() if value is None]:
            del scope[key]
        await app(scope, receive, send)

    return mangling


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"headers": None}, "scope.required"),
        ({"query_string": "a=1"}, "scope.field-type"),
        ({"headers": [("host", "x")]}, "scope.field-type"),
        ({"subprotocols": "chat"}, "scope.field-type"),
        ({"client": "127.0.0.1:5"}, "scope.field-type"),
    ],
)
async def test_the_scope_is_checked(endpoint, trace, changes, rule):
    client = WebsocketCommunicator(mangled(rule_breakers, **changes), f"/ws/{endpoint}/")
    await run(client)
    [scope] = [r for r in the_one_connection(trace) if r["kind"] == "scope"]
    assert rule in rules_broken([scope])


async def test_exit_counts_the_connections_violations(endpoint, trace):
    await run(communicator(endpoint, "accept-twice"))
    [exit_record] = [r for r in the_one_connection(trace) if r["kind"] in ("exit", "error")]
    assert exit_record["note"].endswith("1 ASGI rule violation")


async def test_close_before_accept_is_a_rejection_not_a_violation(endpoint, trace):
    await run(communicator(endpoint, "reject"))
    records = the_one_connection(trace)
    assert rules_broken(records) == []
    # No server here (WebsocketCommunicator): the note says what the spec has a server do.
    # (A loaded machine may add a timing note: the connect's hop took longer than SLOW_WAIT_MS.)
    assert untimed(notes_of(records)) == [
        "a close before accepting rejects the handshake: the spec has the server answer HTTP 403"
    ]


# Every command and connect option of the explorer's own consumers, which must break no rule.
EXPLORER_SESSIONS = [
    ("", ["hi", "/help", "/scope", "/whoami", "/bytes hi", "/burst 3 8", "/sleep 0", "/block 0", "/nope"]),
    ("", ["/close"]),
    ("subprotocol=b", ["/close 4000 bye"]),
    ("delay=0.01&header=X-One:1", ["/sleep 31", "/burst 0"]),
    ("delay=x", []),
    ("reject=1", []),
]


@pytest.mark.parametrize(("query", "texts"), EXPLORER_SESSIONS)
async def test_the_explorers_own_consumers_break_no_rule(endpoint, trace, query, texts):
    client = WebsocketCommunicator(explorer_application, f"/ws/{endpoint}/?{query}", subprotocols=["a", "b"])
    await client.send_input({"type": "websocket.connect"})
    for text in texts:
        await client.send_input({"type": "websocket.receive", "text": text})
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await client.wait(timeout=5)
    records = the_one_connection(trace)
    assert len([r for r in records if r["kind"] == "in"]) == len(texts) + 2
    assert rules_broken(records) == []
    assert records[-1]["note"] == "consumer returned; no ASGI rule broken"
