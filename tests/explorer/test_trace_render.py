"""Display and rendering of single entries: safe and short whatever the input, in and out told apart."""

import dataclasses
import io
import re
import sys

import pytest
from rich import text as rich_text
from rich.console import Console

from explorer.trace.config import TraceConfig
from explorer.trace.display import REDACTED, shown_event, shown_scope
from explorer.trace.entry import TraceEntry
from explorer.trace.render import header, render, styled
from explorer.trace.tracebacks import failure

COMPACT = TraceConfig(mode="compact", max_payload=50)
FULL = TraceConfig(mode="full", max_payload=50)


def entry(kind, event, config=COMPACT, connection="sc#1", **kwargs):
    return TraceEntry(connection=connection, kind=kind, seconds=0.5, event=event, config=config, **kwargs)


def output(renderables, color=False):
    file = io.StringIO()
    console = Console(
        file=file,
        width=120,
        color_system="truecolor" if color else None,
        force_terminal=color,
        markup=False,
        emoji=False,
    )
    for renderable in renderables:
        console.print(renderable)
    return file.getvalue()


def test_incoming_and_outgoing_differ_in_arrow_and_colour():
    incoming = styled(header(entry("in", {"type": "websocket.receive"})))
    outgoing = styled(header(entry("out", {"type": "websocket.send"})))
    assert "→ in" in incoming.plain and "← out" in outgoing.plain
    colours = (
        " ".join(str(span.style) for span in incoming.spans),
        " ".join(str(span.style) for span in outgoing.spans),
    )
    assert "green" in colours[0] and "green" not in colours[1]
    assert "cyan" in colours[1] and "cyan" not in colours[0]


def test_accept_headers_are_decoded_and_set_cookie_redacted():
    event = {"type": "websocket.accept", "headers": [(b"x-server", b"explorer"), (b"set-cookie", b"id=1")]}
    assert shown_event(event, COMPACT)["headers"] == [("x-server", "explorer"), ("set-cookie", REDACTED)]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "websocket.send", "text": "\udcff invalid surrogate \x00"},
        {"type": "websocket.send", "bytes": b"\xff\xfe" * 1_000_000},
        {"type": "x", "n": 10**5000},
        {"type": "x", "deep": [[[[[[[[[[[[["bottom"]]]]]]]]]]]]]},
        {"type": "x", "many": list(range(10_000)), "map": {str(i): i for i in range(10_000)}},
        {"type": "x", "odd": object(), "set": {1, 2}, "float": float("nan")},
        {"type": "x", "headers": "not a list"},
        {"type": "x", "headers": [(b"ok", b"1"), ("str", "pair"), (b"short",), 42]},
        {("tuple", "key"): 1, 3: "int key", b"bytes": "bytes key"},
        "not even a dict",
        None,
    ],
)
@pytest.mark.parametrize("config", [COMPACT, FULL])
def test_rendering_never_raises_and_stays_short(event, config):
    text = output(render(entry("out", event, config)))
    assert len(text) < 50_000  # a million bytes or ten thousand items come out short
    assert "\x00" not in text


def test_a_broken_repr_is_reported_not_raised():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    text = output(render(entry("out", {"type": "x", "value": Broken()})))
    assert "<Broken, repr failed: RuntimeError>" in text


def test_scope_with_odd_user_and_session_objects():
    class Session:
        def items(self):
            raise RuntimeError("database unavailable")

    scope = {"type": "websocket", "user": object(), "session": Session(), "cookies": {"a": "1"}}
    shown = shown_scope(scope, COMPACT)
    assert shown["session"] is REDACTED and shown["cookies"] == {"a": REDACTED}
    revealed = shown_scope(scope, TraceConfig(show_credentials=True))
    assert repr(revealed["session"]) == "<session unreadable: RuntimeError>"


def test_a_wrong_query_string_shows_as_it_is_whether_credentials_are_hidden_or_not():
    # It breaks scope.field-type: the scope shown under the violation must hold the value that broke it.
    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": None}
    for config in (COMPACT, TraceConfig(show_credentials=True)):
        assert shown_scope(scope, config)["query_string"] is None


@pytest.mark.parametrize("config", [COMPACT, FULL])
def test_an_exception_message_from_a_client_is_shown_literally(config):
    try:
        raise ValueError("client said [bold red]hi[/] \x1b[2J")
    except ValueError:
        exc_info = sys.exc_info()
    text = output(
        render(
            entry("error", None, config, note="consumer raised ValueError"), failure(exc_info, config.mode)
        )
    )
    assert "\x1b" not in text
    assert "[bold red]hi[/] \\x1b[2J" in text


def test_colour_output_keeps_client_markup_literal():
    text = output(
        render(entry("in", {"type": "websocket.receive", "text": "[bold red]x[/bold red]"})), color=True
    )
    # Our own styling is the only escape sequence; the client's markup stays text.
    assert not re.findall(r"\x1b(?!\[[0-9;]*m)", text)
    assert "[bold red]x[/bold red]" in re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "\x1b[1;31m" not in text


@pytest.mark.parametrize("config", [COMPACT, FULL])
def test_broken_rules_and_notes_show_under_their_event_with_the_hint(config):
    from explorer.trace.rules import RULES, broke

    hostile = "\x1b[31m[bold]X-A[/bold]"
    event = {"type": "websocket.accept", "headers": [(hostile.encode(), b"1")]}
    violation = broke("accept.headers", f"header name {hostile.encode()!r} is not lowercase")
    text = output(render(entry("out", event, config, violations=(violation,), notes=(f"note {hostile}",))))
    lines = text.splitlines()
    [rule_line] = [line for line in lines if "⚠ accept.headers" in line]
    assert rule_line.startswith(" " * 10)
    assert f"(hint: {RULES['accept.headers'][1]})" in " ".join(text.split())
    [note_line] = [line for line in lines if "ℹ note" in line]
    assert "\\x1b[31m[bold]X-A[/bold]" in note_line
    assert "\x1b" not in text
    assert lines.index(rule_line) > 0  # after the event's own line


def test_waits_and_handler_times_are_shown_and_a_slow_wait_stands_out():
    quick = entry("in", {"type": "websocket.receive"}, thread="MainThread", wait=0.00021)
    slow = entry("in", {"type": "websocket.receive"}, thread="MainThread", wait=1.9, slow=True)
    done = entry("done", {"type": "websocket.receive"}, thread="MainThread", handler=0.0123)
    assert "[MainThread] wait 210µs" in output(render(quick))
    assert "[MainThread] wait 1.900s" in output(render(slow))
    assert "✓ done   websocket.receive    [MainThread] handler 12.3ms" in output(render(done))
    plain, highlighted = (output(render(e), color=True) for e in (quick, slow))
    reverse = re.compile(r"\x1b\[(?:\d+;)*7(?:;\d+)*m wait ")  # reverse video on the wait
    assert reverse.search(highlighted)
    assert not reverse.search(plain)


def terminal(width, color_system):
    """A terminal's console on a string: ``color_system`` one of Rich's, None, or "no_color" (truecolor,
    with the console's ``no_color``)."""
    return Console(
        file=io.StringIO(),
        width=width,
        force_terminal=True,
        color_system="truecolor" if color_system == "no_color" else color_system,
        no_color=color_system == "no_color",
        markup=False,
        emoji=False,
        highlight=False,
    )


@pytest.mark.parametrize("color_system", ["truecolor", "256", "standard", None, "no_color"])
@pytest.mark.parametrize("width", [120, 40])
def test_a_terminals_compact_lines_are_what_rich_would_print(endpoint, color_system, width):
    """``terminal_text`` writes a compact line's parts with their escape codes itself (Rich's layout
    pipeline was most of a terminal's trace): byte for byte what printing the line's Text would write."""
    from explorer.trace.render import compact, compact_lines, terminal_text
    from explorer.trace.rules import broke

    name = f"{endpoint}#7"
    scope = {
        "type": "websocket",
        "path": f"/ws/{endpoint}/",
        "query_string": b"room=lobby&token=secret",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"cookie", b"sessionid=abc")],
        "subprotocols": ["chat"],
        "client": ["127.0.0.1", 50000],
    }
    hostile = "\x1b[31m[bold]X[/bold] \u202e"
    entries = [
        entry("scope", scope, connection=name),
        entry("in", {"type": "websocket.receive", "text": hostile * 5}, thread="MainThread", wait=0.00021),
        entry(
            "in", {"type": "websocket.receive", "bytes": b"\x00\xff"}, thread="MainThread", wait=2, slow=True
        ),
        entry("out", {"type": "websocket.send", "text": "x" * 200}, thread="MainThread"),
        entry("done", {"type": "websocket.receive"}, thread="MainThread", handler=0.0123, outcome="raised"),
        entry(
            "out",
            {"type": "websocket.accept", "headers": [(b"X-A", b"1")]},
            violations=(broke("accept.headers", f"header name {hostile!r} is not lowercase"),),
            notes=(f"a note that runs on and on {hostile} " * 4,),
        ),
        entry("note", None, note="the process is ending with this connection open " * 3),
    ]
    console = terminal(width, color_system)
    file = console.file
    for each in entries:
        each = dataclasses.replace(each, connection=name)
        file.seek(0)
        file.truncate()
        for text in compact(each, width):
            console.print(text, soft_wrap=True)
        assert (
            "".join(line + "\n" for line in terminal_text(compact_lines(each, width), console))
            == file.getvalue()
        )


def test_a_lines_names_are_kept_for_the_next_line_yet_each_line_says_its_own(endpoint):
    """The parts that name a line (connection, kind, type, thread) are made once and kept: a later line
    with another type, thread, outcome or an odd type (even one that cannot be a key) still says its own."""
    from explorer.trace.render import plain

    name = f"{endpoint}#3"
    lines = [
        plain(entry(kind, event, connection=name, thread=thread, **extra))[0]
        for kind, event, thread, extra in [
            ("in", {"type": "websocket.receive", "text": "a"}, "MainThread", {"wait": 0.001}),
            ("in", {"type": "websocket.receive", "text": "b"}, "MainThread", {"wait": 0.002}),
            ("in", {"type": "websocket.disconnect", "code": 1000}, "MainThread", {}),
            ("in", {"type": "websocket.receive", "text": "c"}, "ThreadPoolExecutor-0_0", {}),
            ("done", {"type": "websocket.receive"}, "MainThread", {"outcome": "raised"}),
            ("out", {"type": ["websocket.send"]}, "MainThread", {}),
            ("out", {"type": ["websocket.send"]}, "MainThread", {}),
            ("out", {"type": 1}, "MainThread", {}),
            ("out", {"type": True}, "MainThread", {}),  # equal to 1, and hashed alike
        ]
    ]
    assert "→ in     websocket.receive    [MainThread] wait 1.0ms {'text': 'a'}" in lines[0]
    assert "→ in     websocket.receive    [MainThread] wait 2.0ms {'text': 'b'}" in lines[1]
    assert "→ in     websocket.disconnect [MainThread] {'code': 1000}" in lines[2]
    assert "websocket.receive    [ThreadPoolExecutor-0_0] {'text': 'c'}" in lines[3]
    assert "✗ failed websocket.receive    [MainThread]" in lines[4]
    assert lines[5] == lines[6] and "← out    ['websocket.send']   [MainThread]" in lines[5]
    assert "← out    1                    [MainThread]" in lines[7]
    assert "← out    True                 [MainThread]" in lines[8]
    assert all(line.split()[1] == name for line in lines)


@pytest.mark.parametrize("color_system", ["truecolor", "standard", None, "no_color"])
@pytest.mark.parametrize("width", [120, 60])
def test_a_terminals_full_lines_are_what_rich_would_print(endpoint, color_system, width):
    """``full_lines`` lays the event out, highlights it and draws its indent guides as ``Pretty`` does,
    and wraps what is too long as Rich does: what printing ``full``'s renderables wrote, less the spaces
    Rich pads each line's end with."""
    from explorer.trace.render import full, full_lines
    from explorer.trace.rules import broke

    hostile = "\x1b[31m[bold]X[/bold] \u202e"
    entries = [
        entry(
            "out",
            {
                "type": "websocket.accept",
                "subprotocol": "chat",
                "headers": [(b"x-a", b"1"), (b"x-long", b"2" * 300)],
                "nested": {"list": [1, 2.5, None, True, {"deep": "c" * 150}], "bytes": b"\x00\xff"},
            },
            FULL,
            thread="MainThread",
            violations=(broke("accept.headers", f"header name {hostile!r} is not lowercase"),),
        ),
        entry(
            "in",
            {"type": "websocket.receive", "text": hostile * 3},
            FULL,
            thread="MainThread",
            wait=2,
            slow=True,
        ),
        entry("done", {"type": "websocket.receive"}, FULL, thread="MainThread", handler=0.0123),
        entry("in", ["not", "a", "dict"], FULL, notes=("a note " * 30,)),
    ]
    console = terminal(width, color_system)
    file = console.file
    for each in entries:
        each = dataclasses.replace(each, connection=f"{endpoint}#7")
        file.seek(0)
        file.truncate()
        for renderable in full(each, width):
            console.print(renderable, soft_wrap=isinstance(renderable, rich_text.Text))  # as the handler did
        printed = [line.rstrip() for line in file.getvalue().splitlines()]
        assert full_lines(each, console, width) == printed


def test_a_full_line_on_an_ascii_only_terminal_has_no_indent_guides_as_rich_would_print(endpoint):
    """``Pretty`` draws no indent guides where the console cannot encode them: nor does ``full_lines``."""
    from explorer.trace.render import full, full_lines

    class AsciiFile(io.StringIO):
        encoding = "ascii"

    console = Console(file=AsciiFile(), width=80, force_terminal=True, color_system="standard", markup=False)
    event = {"type": "websocket.send", "nested": {"list": [1, {"deep": "x" * 100}]}}
    each = entry("out", event, FULL, connection=f"{endpoint}#2", thread="MainThread")
    for renderable in full(each, 80):
        console.print(renderable, soft_wrap=isinstance(renderable, rich_text.Text))
    printed = [line.rstrip() for line in console.file.getvalue().splitlines()]
    assert full_lines(each, console, 80) == printed and "│" not in "".join(printed)
