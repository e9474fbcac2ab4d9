"""Under a server the explorer does not know, the trace says only what its declared spec_version implies."""

import pytest

from explorer.trace import TraceMiddleware


def scope_of(spec_version=None):
    scope = {"type": "websocket", "path": "/ws/x/", "headers": [], "subprotocols": []}
    if spec_version:
        scope["asgi"] = {"version": "3.0", "spec_version": spec_version}
    return scope


async def run(app, scope, script):
    """Drive ``app`` as a server of our own would: its send is a plain function the explorer cannot know."""
    events = iter(script)
    sent = []

    async def receive():
        return next(events)

    async def send(event):  # a server nobody has heard of
        sent.append(event)

    await TraceMiddleware(app)(scope, receive, send)
    return sent


async def accepts_with_a_header_and_closes_with_a_reason(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept", "headers": [(b"x-a", b"1")]})
    await send({"type": "websocket.close", "code": 4000, "reason": "bye"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            None,
            [
                "its scope declares no spec_version, so ASGI spec 2.0; accept headers came in 2.1, "
                "so it may not send them",
                "its scope declares no spec_version, so ASGI spec 2.0; close reasons came in 2.3, "
                "so it may not send them",
            ],
        ),
        ("2.1", ["its scope declares ASGI spec 2.1; close reasons came in 2.3, so it may not send them"]),
        ("2.3", []),
    ],
)
async def test_notes_say_only_what_the_declared_spec_version_implies(trace, spec, expected):
    await run(accepts_with_a_header_and_closes_with_a_reason, scope_of(spec), [{"type": "websocket.connect"}])
    records = trace.records()
    assert [note for r in records for note in r.get("notes", ())] == expected
    assert not [r for r in records if r["kind"] == "server"]  # it is not named: it is not known
    [ending] = [r for r in records if r["kind"] == "exit"]
    assert ending["note"] == "application returned; no ASGI rule broken"


async def test_an_exception_under_an_unknown_server_claims_nothing_of_the_wire(trace):
    async def fails(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await run(fails, scope_of("2.3"), [{"type": "websocket.connect"}])
    [error] = [r for r in trace.records() if r["kind"] == "error"]
    assert "what the client sees depends on the server, which the explorer does not know" in error["note"]


@pytest.mark.parametrize("spec", ["2.x", "three", "2", ""])
async def test_a_spec_version_that_is_not_a_version_breaks_nothing(trace, spec):
    """A server of our own may declare anything: the trace says what it declared and goes on."""
    sent = await run(
        accepts_with_a_header_and_closes_with_a_reason, scope_of(spec), [{"type": "websocket.connect"}]
    )
    assert [event["type"] for event in sent] == ["websocket.accept", "websocket.close"]
    [ending] = [r for r in trace.records() if r["kind"] == "exit"]
    assert ending["note"].startswith("application returned")
