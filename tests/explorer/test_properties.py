"""Property tests: whatever a client (or a consumer) sends, nothing raises out of the core, the
rule checks or the trace, and client text reaches the console only literally."""

import datetime
import io
import json
import os

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from rich.console import Console

from consumers.actions import Action, Fail, Send, Sleep
from consumers.core import ExplorerCore
from explorer import redaction
from explorer.trace.config import TraceConfig
from explorer.trace.entry import TraceEntry, Violation
from explorer.trace.recording import decode, encode, iso
from explorer.trace.render import compact, plain, render
from explorer.trace.rules import WebSocketRules, broke

# CI runs the same examples every time (derandomize); a developer's run explores new ones.
PROPERTIES = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 150)),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
MARKUP = [
    "[bold red]x[/]",
    "[link=http://evil.example]click[/link]",
    "\x1b[31mred\x1b[0m",
    "\x07\x1b]0;title\x07",
]
MEGABYTE = "x" * (1024 * 1024 + 1)

hostile_text = st.one_of(
    st.text(),
    st.sampled_from(MARKUP),
    st.text(alphabet=st.sampled_from("[]/=\x1b\x07\x00\r\n\t\u202e\ud800 ab"), max_size=60),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), hostile_text, st.binary(max_size=64)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(hostile_text, st.integers(), st.binary(max_size=8)), inner, max_size=5),
    ),
    max_leaves=30,
)
event_types = st.sampled_from(
    [
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
        "websocket.accept",
        "websocket.send",
        "websocket.close",
        "room.message",
        "http.request",
    ]
)
events = st.one_of(
    st.dictionaries(st.text(max_size=12), values, max_size=6),
    st.builds(
        lambda t, rest: {"type": t, **rest},
        event_types,
        st.dictionaries(
            st.sampled_from(["text", "bytes", "code", "reason", "subprotocol", "headers", "x"]),
            values,
            max_size=4,
        ),
    ),
    values,
)


def deep(levels):
    value = "bottom"
    for _ in range(levels):
        value = {"nested": [value]}
    return value


@PROPERTIES
@given(text=hostile_text)
@example(text="/burst 10000 1048576")
@example(text="/sleep nan")
@example(text="/close 4000 " + "é" * 200)
@example(text=MEGABYTE)
@example(text="/raise")
def test_the_core_answers_any_text_without_raising(text):
    scope = {"type": "websocket", "query_string": b"", "subprotocols": [], "trace_connection": "sc#1"}
    core = ExplorerCore(scope)
    core.connect()
    actions = list(core.receive({"type": "websocket.receive", "text": text}))  # /raise too: a Fail action
    assert all(isinstance(action, Action) for action in actions)
    for action in actions:
        if isinstance(action, Send) and "text" in action.event:
            assert isinstance(action.event["text"], str)


@PROPERTIES
@given(query=st.binary(max_size=80))
def test_any_query_string_gives_a_connect_decision(query):
    actions = ExplorerCore({"type": "websocket", "query_string": query}).connect()
    assert all(isinstance(action, (Send, Sleep, Fail)) for action in actions)  # ?raise=1 is a Fail


@PROPERTIES
@given(scope=values, incoming=st.lists(events, max_size=4), outgoing=st.lists(events, max_size=4))
def test_the_rule_checks_never_raise(scope, incoming, outgoing):
    rules = WebSocketRules(scope)
    found = list(rules.scope_violations)
    for event in incoming:
        found += rules.incoming(event) if isinstance(event, dict) else rules.incoming({"type": event})
    for event in outgoing:
        found += rules.outgoing(event)
    assert all(isinstance(v, Violation) and v.problem for v in found)
    assert rules.count == len(found)


def console_output(renderables):
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None, markup=False, emoji=False, highlight=False)
    for renderable in renderables:
        console.print(renderable, soft_wrap=True)
    return buffer.getvalue()


@PROPERTIES
@given(
    event=events,
    mode=st.sampled_from(["compact", "full"]),
    kind=st.sampled_from(["in", "out", "layer", "scope"]),
)
@example(event={"type": "websocket.receive", "text": MEGABYTE}, mode="compact", kind="in")
@example(event=deep(50), mode="full", kind="scope")
def test_the_trace_renders_anything_without_raising(event, mode, kind):
    config = TraceConfig(mode=mode, max_payload=64)
    notes = ("note [bold]x[/bold] \x1b[31m",)
    violations = (broke("send.payload", "problem \x1b[2J [red]x[/red]"),)
    entry = TraceEntry(
        "sc#1", kind, 0.5, event, config, thread="T\x1b[1m", notes=notes, violations=violations
    )
    text = console_output(render(entry))
    lines = plain(entry)
    for output in (text, "\n".join(lines)):
        assert "\x1b" not in output and "\x07" not in output
    # Round trip through a recording renders the same lines.
    from explorer.trace.render import shown_body

    recorded = decode(json.loads(json.dumps(encode(shown_body(entry)))))
    replayed = TraceEntry(
        "sc#1",
        kind,
        0.5,
        recorded,
        config,
        recorded=True,
        thread="T\x1b[1m",
        notes=notes,
        violations=violations,
    )
    assert [t.plain for t in compact(replayed)] == [t.plain for t in compact(entry)]


@PROPERTIES
@given(text=hostile_text)
@example(text="[bold red]shout[/bold red]")
@example(text="[link=http://evil.example]x[/link]")
def test_client_text_is_rendered_literally(text):
    entry = TraceEntry(
        "ac#1", "in", 0.1, {"type": "websocket.receive", "text": text}, TraceConfig(max_payload=10**6)
    )
    output = console_output(render(entry))
    # What the console shows is the repr of what the client sent: nothing interpreted, nothing lost.
    assert repr({"text": text}) in output
    assert "\x1b" not in output


@PROPERTIES
@given(data=st.one_of(hostile_text, st.binary(max_size=200)))
@example(data='{"user": "ann", "note": "a=b; c: d"}')
@example(data=b'\x00\xff{"k\\"": 1}=\x80')
def test_a_message_naming_no_credential_is_traced_byte_for_byte(data):
    """Hiding credential fields inside messages touches nothing else: not a character, not a byte."""
    config = TraceConfig()
    readable = data.decode("latin-1") if isinstance(data, bytes) else data
    assume(not any(pattern.search(readable) for pattern in config.credentials))
    assert redaction.payload(data, config) == data


@PROPERTIES
@given(value=hostile_text)
def test_a_credential_field_never_shows_its_value(value):
    """Whatever the value, JSON or form-style, and cut short as the trace captures it."""
    assume(value and "s3" not in value)
    secret = f"s3{value}"
    config = TraceConfig()
    for message in (json.dumps({"note": "hi", "password": secret}), f"pwd={secret}"):
        for cut in (len(message), len(message) - 1):
            shown = redaction.payload(message[:cut], config)
            assert "s3" not in shown and "<redacted>" in shown  # "s3" begins the secret alone


@PROPERTIES
@given(moment=st.floats(min_value=-62_135_596_800, max_value=2**33))  # from year 1 on
@example(moment=1_700_000_000.9999995)  # rounds up into the next second
@example(moment=5e-07)  # half a microsecond, exactly: to even, as datetime rounds
@example(moment=1_700_000_000.0000015)
def test_a_recorded_moment_is_written_as_datetime_writes_it(moment):
    """The recording's clock (made with each second's part kept) says what ``datetime`` would, digit for
    digit, its rounding included."""
    written = datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="microseconds")
    assert iso(moment) == written
