"""``manage.py trace``: a recording rendered, filtered and diffed, from real sessions on both endpoints."""

import asyncio
import copy
import json
import logging
import re
import time
from io import StringIO

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st

from explorer.asgi import application
from explorer.trace import replay
from explorer.trace.display import printable
from tests.explorer.test_properties import PROPERTIES

SESSION = ["hello", "/bytes hi", "/whoami", "/burst 2 8"]


async def session(endpoint, texts=SESSION, headers=()):
    client = WebsocketCommunicator(application, f"/ws/{endpoint}/", headers=list(headers))
    await client.connect()
    for text in texts:
        await client.send_to(text_data=text)
        for _ in range(2 if text.startswith("/burst") else 1):
            await client.receive_output()
    await client.disconnect()


def trace_command(*args):
    out = StringIO()
    call_command("trace", *map(str, args), "--width", "200", stdout=out)
    return out.getvalue()


def connection_ids(trace):
    return list(dict.fromkeys(record["connection"] for record in trace.records()))


async def test_renders_the_recording_like_the_console(trace):
    await session("sc")
    await session("ac")
    sc, ac = connection_ids(trace)
    output = trace_command(trace.flushed())
    for connection in (sc, ac):
        assert f"{connection:<6} → in     websocket.receive" in output
        assert f"{connection:<6} ← out    websocket.send" in output
    # Each event line as the live console printed it, minus nothing.
    live = [line for line in trace.lines() if "websocket.receive" in line]
    assert all(line in output for line in live)
    assert output.rstrip().endswith("0 ASGI rule violations")


async def test_writes_a_picture_of_the_console_as_svg(trace, endpoint, tmp_path):
    """The README's picture is one: the lines as the console shows them, what a client sent as text."""
    await session(endpoint, ["hello", "[bold]not markup[/bold] \x1b[31mnot red"])
    picture = tmp_path / "trace.svg"
    said = trace_command(trace.flushed(), "--svg", picture)
    assert f"wrote {picture}" in said
    svg = picture.read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    text = svg.replace("&#160;", " ")
    [connection] = connection_ids(trace)
    assert f"{connection}" in text and "websocket.receive" in text and "hello" in text
    assert "[bold]not markup[/bold]" in text and "\\x1b[31mnot red" in text  # the escape, as its repr
    assert "\x1b" not in svg


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        (["-e", "sc"], lambda r, sc, ac: r["endpoint"] == "sc"),
        (["-c", "{ac}"], lambda r, sc, ac: r["connection"] == ac),
        (
            ["-t", "receive"],
            # The event, and the handler's done line that goes with it.
            lambda r, sc, ac: (r["event"] or {}).get("type") == "websocket.receive",
        ),
        (
            ["-t", "websocket.accept", "-t", "scope"],
            lambda r, sc, ac: r["kind"] == "scope" or (r["event"] or {}).get("type") == "websocket.accept",
        ),
    ],
)
async def test_filters(trace, options, kept):
    await session("sc")
    await session("ac")
    sc, ac = connection_ids(trace)
    options = [option.format(sc=sc, ac=ac) for option in options]
    output = trace_command(trace.flushed(), *options)
    expected = [r for r in trace.records() if kept(r, sc, ac)]
    assert output.rstrip().splitlines()[-1].startswith(f"{len(expected)} of {len(trace.records())} records")
    shown = [line for line in output.splitlines() if "s sc#" in line or "s ac#" in line]
    assert len(shown) == len(expected)


async def test_violations_filter_keeps_only_records_that_broke_a_rule(trace, tmp_path):
    await session("ac")
    broken = dict(trace.records()[1])
    broken["violations"] = [{"rule": "send.payload", "problem": "both bytes and text are set", "hint": "h"}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [*trace.records(), broken]) + "\n")
    output = trace_command(path, "--violations")
    assert "⚠ send.payload both bytes and text are set" in output
    assert output.rstrip().splitlines()[-1].startswith("1 of ")


async def test_diff_lines_up_the_sync_and_async_run_of_one_session(trace):
    await session("sc")
    await session("ac")
    sc, ac = connection_ids(trace)
    output = trace_command(trace.flushed(), "--diff", sc, ac)
    # Only /whoami's reply differs (the consumer, its thread, the event loop); no step is missing.
    assert (
        output.rstrip().splitlines()[-1]
        == f"{sc} ↔ {ac}: 12 alike, 1 different, 0 only in {sc}, 0 only in {ac}"
    )
    [different] = [line for line in output.splitlines() if line.startswith("│ ≠")]
    assert "websocket.send" in different
    assert "ThreadPoolExecutor" in output and "MainThread" in output


async def test_diff_shows_steps_only_one_side_has(trace):
    await session("sc", ["hello"])
    await session("ac", ["hello", "again"])
    sc, ac = connection_ids(trace)
    output = trace_command(trace.flushed(), "--diff", sc, ac)
    assert output.rstrip().splitlines()[-1].endswith(f"0 different, 0 only in {sc}, 2 only in {ac}")
    assert "'again'" in output


def test_diff_of_an_unknown_connection_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(CommandError, match=r"no connection sc#1 in the recording; it has none"):
        trace_command(path, "--diff", "sc#1", "ac#2")


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"cannot read .*nope\.jsonl: No such file or directory"):
        trace_command(tmp_path / "nope.jsonl")


async def test_lines_that_are_not_records_are_skipped_and_counted(trace, tmp_path):
    await session("ac", ["hello"])
    good = trace.flushed().read_text().splitlines()
    path = tmp_path / "damaged.jsonl"
    path.write_text("\n".join(["not json", *good, "[1, 2]", '{"connection": "ac#1"}', good[0][:30]]))
    output = trace_command(path)
    assert "'hello'" in output
    assert output.rstrip().endswith(
        "4 lines skipped: 2 not JSON, 1 a list, not an object, 1 kind is missing"
    ), output.splitlines()[-1]


async def test_client_text_in_a_recording_stays_literal(trace):
    hostile = "[bold red]red[/] [link=http://x]x[/link] \x1b[31mansi\x1b[0m \x07"
    await session("ac", [hostile])
    output = trace_command(trace.flushed())
    assert "\x1b" not in output and "\x07" not in output
    assert "[bold red]red[/] [link=http://x]x[/link] \\x1b[31mansi\\x1b[0m \\x07" in output


async def test_credentials_stay_redacted_in_the_recording(endpoint, trace):
    await session(
        endpoint, ["hi"], headers=[(b"cookie", b"sessionid=s3cr3t"), (b"authorization", b"Bearer s3cr3t")]
    )
    recorded = trace.flushed().read_text()
    assert "s3cr3t" not in recorded
    assert '{"$redacted": true}' in recorded
    assert "s3cr3t" not in trace_command(trace.flushed(), "--mode", "full")


def pytest_module(trace, connection):
    out = StringIO()
    call_command("trace", str(trace.flushed()), "--pytest", connection, stdout=out)
    return out.getvalue()


def loaded(source):
    namespace = {}
    exec(compile(source, "test_replay.py", "exec"), namespace)  # the module we just made
    return namespace


async def test_a_recorded_connection_becomes_a_test_that_passes(trace, endpoint):
    await session(endpoint, ["hello", "/bytes hi", "/burst 2 8", "/help"])
    [connection] = connection_ids(trace)
    source = pytest_module(trace, connection)
    assert f"Replay of {connection}" in source
    assert "WebsocketCommunicator" in source
    module = loaded(source)
    steps = module["STEPS"]
    assert [event["type"] for event, _ in steps] == [
        "websocket.connect",
        *["websocket.receive"] * 4,
        "websocket.disconnect",
    ]
    assert steps[2] == (
        {"type": "websocket.receive", "text": "/bytes hi"},
        [{"type": "websocket.send", "bytes": b"hi"}],
    )
    await module["replay"]()  # what the generated test runs


async def test_a_reply_naming_a_channel_or_hiding_a_credential_replays(trace, endpoint):
    """``/whoami`` names the consumer's channel, new each run; a message's password is hidden in the
    recording: a channel name matches any channel name, and a hidden value anything."""
    await session(endpoint, ["/whoami", '{"user": "ann", "password": "s3cr3t"}'])
    [connection] = connection_ids(trace)
    source = pytest_module(trace, connection)
    assert "s3cr3t" not in source and "inmemory!" in source
    assert "is sent in its place" in source  # the module says what it cannot send again
    await loaded(source)["replay"]()


@pytest.mark.usefixtures("database")
async def test_a_reply_naming_its_own_connection_replays_under_the_replays_number(trace, endpoint):
    """A room's message names its sender (``[lobby] sc#37: hi``), and the replay's connection has a number
    of its own: the recorded connection's name matches it, and only it."""
    await session(endpoint, ["/join lobby", "/say lobby hi"])
    [connection] = connection_ids(trace)
    source = pytest_module(trace, connection)
    assert f"[lobby] {connection}: hi" in source
    module = loaded(source)
    await module["replay"]()  # the replay's connection has the next number
    replayed = module["CONNECTION"].replayed
    assert replayed != connection and replayed.startswith(connection.rpartition("#")[0] + "#")
    said = {"type": "websocket.send", "text": f"[lobby] {connection}: hi"}
    name = connection.rpartition("#")[0]
    for other in (f"{name}-other#1", f"{name}#{int(replayed.rpartition('#')[2]) + 1}"):
        # Another name, or the same with another number than the replay's: not the replay's own.
        assert not module["same"]({**said, "text": f"[lobby] {other}: hi"}, said, module["CONNECTION"])
    assert module["same"]({**said, "text": f"[lobby] {replayed}: hi"}, said, module["CONNECTION"])


def test_a_shortened_reply_naming_its_own_connection_is_as_long_as_the_replays_name_makes_it():
    from explorer.trace.display import Shortened
    from explorer.trace.regression import OwnName, same

    own = OwnName("sc#7")
    recorded = Shortened("[lobby] sc#7: hello, this is a long", 1000)
    assert same("[lobby] sc#12: hello, this is a long" + "x" * 965, recorded, own)  # one digit longer
    assert own.replayed == "sc#12"
    assert not same("[lobby] sc#12: hello, this is a long" + "x" * 40, recorded, own)  # not as long


async def test_a_channel_name_matches_only_a_channel_name(trace, endpoint):
    await session(endpoint, ["/whoami"])
    [connection] = connection_ids(trace)
    source = pytest_module(trace, connection)
    module = loaded(source)
    [(_, [reply])] = [step for step in module["STEPS"] if step[0].get("text") == "/whoami"]
    recorded = reply["text"].head if hasattr(reply["text"], "head") else reply["text"]
    channel = re.search(r"specific\.[^!]*![A-Za-z]+", recorded)[0]
    assert module["same"]({**reply, "text": reply_text(reply, channel, channel[:-3] + "xyz")}, reply)
    assert not module["same"]({**reply, "text": reply_text(reply, channel, "not a channel name")}, reply)


def reply_text(reply, old, new):
    text = reply["text"]
    whole = text.head + "x" * (text.length - len(text.head)) if hasattr(text, "head") else text
    return whole.replace(old, new)


async def test_the_replay_fails_when_the_consumer_answers_differently(trace, endpoint):
    await session(endpoint, ["hello"])
    [connection] = connection_ids(trace)
    source = pytest_module(trace, connection).replace("'text': 'hello'}]", "'text': 'goodbye'}]")
    with pytest.raises(AssertionError, match="recorded"):
        await loaded(source)["replay"]()


async def test_shortened_replies_match_by_their_start_and_length_and_redacted_headers_are_left_out(
    trace, endpoint
):
    from django.test import override_settings

    with override_settings(EXPLORER_TRACE={"MODE": "compact", "MAX_PAYLOAD": 16}):
        await session(endpoint, ["/burst 2 100"], headers=[(b"cookie", b"sessionid=s3cr3t")])
    [connection] = connection_ids(trace)
    source = pytest_module(trace, connection)
    assert "s3cr3t" not in source
    assert "left out: 'cookie'" in source
    assert "Shortened('1/2 ............', 100)" in source
    await loaded(source)["replay"]()


async def test_a_message_the_recording_shortened_cannot_be_replayed(trace, endpoint):
    from django.test import override_settings

    with override_settings(EXPLORER_TRACE={"MODE": "compact", "MAX_PAYLOAD": 16}):
        await session(endpoint, ["x" * 100])
    [connection] = connection_ids(trace)
    with pytest.raises(CommandError, match="shortened what the client sent"):
        pytest_module(trace, connection)


ESCAPES = "\x1b]52;c;cHduZWQ=\x07 \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \x1b[2J\x1b[H \x9b31m \u202e"


def escape_free(text):
    return "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\u202e" not in text


def crafted(tmp_path, *records):
    path = tmp_path / "crafted.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    return path


def test_escapes_in_any_field_of_a_crafted_recording_never_reach_the_terminal(tmp_path):
    record = {
        "connection": f"sc#1{ESCAPES}",
        "kind": "out",
        "seconds": 0.5,
        "thread": ESCAPES,
        "note": ESCAPES,
        "notes": [ESCAPES],
        "event": {"type": ESCAPES, ESCAPES: {"$repr": ESCAPES}, "x": {"$shortened": ESCAPES, "length": 9}},
        "violations": [{"rule": ESCAPES, "problem": ESCAPES, "hint": ESCAPES}],
        "traceback": ESCAPES,
    }
    other = {**record, "connection": "ac#2"}
    path = crafted(tmp_path, record, other)
    shown_name = printable(f"sc#1{ESCAPES}")  # as the trace shows it, and so as a user types it
    for args in ([], ["--mode", "full"], ["--diff", shown_name, "ac#2"]):
        output = trace_command(path, *args)
        assert escape_free(output), args
        assert "\\x1b]52;c;" in output  # shown, escaped


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (
            {
                "connection": "sc#1",
                "kind": "out",
                "seconds": 1,
                "violations": [{"rule": "nope", "problem": 5}],
            },
            "problem is int, not text",
        ),
        ({"connection": "sc#1", "kind": "in", "seconds": 1, "thread": 5}, "thread is int, not text"),
        (
            {"connection": "sc#1", "kind": "in", "seconds": 1, "wait": "slow"},
            "wait is str, not a duration (seconds, 0 or more)",
        ),
        ({"connection": ["a"], "kind": "in", "seconds": 1}, "connection is list, not text"),
        ({"connection": "sc#1", "seconds": 1}, "kind is missing"),
        ({"connection": "sc#1", "kind": "in", "seconds": True}, "seconds is bool, not a number"),
        (
            {"connection": "sc#1", "kind": "teleport", "seconds": 1},
            "kind 'teleport' is not one the trace writes",
        ),
    ],
)
def test_valid_json_of_the_wrong_shape_is_skipped_and_counted(tmp_path, record, why):
    good = {"connection": "sc#1", "kind": "note", "seconds": 0.1, "note": "fine"}
    path = crafted(tmp_path, good, record)
    for args in ([], ["--diff", "sc#1", "sc#1"]):
        output = trace_command(path, *args)
        if not args:
            assert output.rstrip().endswith(f"1 line skipped: 1 {why}")


def test_a_deeply_nested_line_is_skipped_not_a_crash(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(
        "[" * 100_000 + "\n" + json.dumps({"connection": "a#1", "kind": "note", "seconds": 0}) + "\n"
    )
    output = trace_command(path)
    assert output.rstrip().endswith("1 line skipped: 1 not JSON")


def test_a_filter_that_matches_nothing_says_so(trace, tmp_path):
    path = crafted(tmp_path, {"connection": "sc#1", "kind": "note", "seconds": 0.1, "note": "x"})
    with pytest.raises(CommandError, match="no record passes the filters; the recording has sc#1"):
        trace_command(path, "-c", "sc#9")


def test_a_type_filter_passes_over_an_event_whose_type_is_not_text(tmp_path):
    odd = {"connection": "sc#1", "kind": "out", "seconds": 0.1, "event": {"type": ["websocket.send"]}}
    good = {"connection": "sc#1", "kind": "in", "seconds": 0.2, "event": {"type": "websocket.receive"}}
    output = trace_command(crafted(tmp_path, odd, good), "-t", "receive")
    assert "websocket.receive" in output
    assert "['websocket.send']" not in output


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "connection",
    "kind",
    "seconds",
    "event",
    "thread",
    "note",
    "notes",
    "violations",
    "wait",
    "handler",
    "slow",
    "traceback",
    "dropped",
    "consumer",
    "text",
]


@PROPERTIES
@given(
    records=st.lists(
        st.dictionaries(
            st.sampled_from(FIELDS),
            JSON_VALUES | st.sampled_from(["in", "out", "scope", "sc#1", ESCAPES]),
            max_size=8,
        ),
        max_size=6,
    )
)
def test_arbitrary_json_records_never_crash_the_command_nor_reach_the_terminal(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("fuzz") / "r.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    for args in ([], ["--mode", "full"], ["--diff", "sc#1", ESCAPES]):
        try:
            output = trace_command(path, *args)
        except CommandError:
            continue  # a clear refusal (nothing matches) is fine; a traceback is not
        assert escape_free(output)


async def recorded_run(path, endpoint, monkeypatch, started):
    """One run of a process: a handler of its own appending to ``path``, as a server started anew
    (its trace started at ``started``) would."""
    from explorer.trace.handlers import QueuedTraceHandler

    monkeypatch.setattr("explorer.trace.connection.TRACE_STARTED", started)
    handler = QueuedTraceHandler(file=path, console=None)
    logger = logging.getLogger("explorer.trace")
    logger.addHandler(handler)
    try:
        await session(endpoint, ["hello"])
    finally:
        logger.removeHandler(handler)
        handler.close()


async def test_each_run_has_a_header_and_names_stay_unique_in_the_file(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    await recorded_run(path, "sc", monkeypatch, time.time() - 60)
    await recorded_run(path, "ac", monkeypatch, time.time())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    headers = [line for line in lines if line["kind"] == "run"]
    assert [h["run"] for h in headers] == [1, 2]
    assert all(h["pid"] and h["started"] and "django" in h["versions"] for h in headers)
    assert {line["run"] for line in lines if line["kind"] != "run"} == {1, 2}
    listed = trace_command(path, "--runs")
    assert "Runs in the recording" in listed and "1 " in listed and "2 " in listed
    output = trace_command(path)
    [first] = {line["connection"] for line in lines if line.get("run") == 1 and line.get("connection")}
    [second] = {line["connection"] for line in lines if line.get("run") == 2 and line.get("connection")}
    assert f"1:{first} " in output and f"2:{second} " in output  # qualified by run
    only_second = trace_command(path, "--run", "2")
    assert f"1:{first}" not in only_second and f"2:{second}" in only_second
    with pytest.raises(CommandError, match=r"^no run 3 in the recording; it has 1, 2$"):
        trace_command(path, "--run", "3")
    # The server's record (as a real server's run has) belongs to no connection: it is not offered as one.
    server = {"connection": "", "endpoint": "", "kind": "server", "seconds": 0.0, "event": None}
    with path.open("a") as file:
        file.write(json.dumps({**server, "note": "daphne 4.2.3", "run": 2}) + "\n")
    with pytest.raises(
        CommandError, match=rf"^no connection ac#99 in the recording; it has 1:{first}, 2:{second}$"
    ):
        trace_command(path, "--diff", f"1:{first}", "ac#99")


@pytest.mark.parametrize("clock", ["process", "connection", "wall"])
async def test_the_time_column_follows_the_clock(trace, clock):
    import re

    await session("sc", ["hello"])
    await asyncio.sleep(0.3)
    await session("ac", ["hello"])
    output = trace_command(trace.flushed(), "--clock", clock)
    starts = [line for line in output.splitlines() if "● scope" in line]
    times = [line.split()[0] for line in starts]
    if clock == "wall":
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", t) for t in times)
    elif clock == "connection":
        assert times == ["0.000s", "0.000s"]  # each from its own arrival
    else:
        first, second = (float(t.rstrip("s")) for t in times)
        assert second - first >= 0.3  # one timeline: the later connection is later


def test_a_diff_leaves_the_records_it_was_given_as_they_were(tmp_path):
    receive = {"type": "websocket.receive", "text": "x"}
    path = crafted(
        tmp_path,
        {"connection": "sc#1", "kind": "in", "seconds": 0.1, "event": receive},
        {"connection": "sc#1", "kind": "done", "seconds": 0.2, "handler": 0.001},
    )
    records = replay.load([("", path.read_text().splitlines())]).entries
    before = copy.deepcopy(records)
    replay.diff(records, records, "sc#1", "sc#1")
    assert records == before


@pytest.mark.usefixtures("database")
async def test_a_connection_that_queried_replays_with_the_database(trace, endpoint):
    await session(endpoint, ["/history lobby", "/query 0"])
    [connection] = connection_ids(trace)
    source = pytest_module(trace, connection)
    assert "@pytest.mark.django_db(transaction=True)  # its handlers queried the database" in source
    await loaded(source)["replay"]()


async def test_a_connection_that_never_queried_replays_without_one(trace, endpoint):
    await session(endpoint, ["hello"])
    [connection] = connection_ids(trace)
    assert "django_db" not in pytest_module(trace, connection)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("queries", "[Infinity, 1]"),
        ("queries", "[1e400, 1]"),
        ("queries", "[-5, 1]"),
        ("queries", "[1, -3]"),
        ("queries", "[1.5, 1]"),
        ("took", "-0.5"),
        ("took", "Infinity"),
        ("wait", "Infinity"),
    ],
)
def test_a_recorded_count_or_time_that_cannot_be_is_not_a_record(tmp_path, field, value):
    line = (
        '{"connection": "sc#1", "kind": "done", "seconds": 1.0, "event": {"type": "websocket.receive"}, '
        f'"{field}": {value}}}'
    )
    (tmp_path / "crafted.jsonl").write_text(line + "\n")
    output = trace_command(tmp_path / "crafted.jsonl")
    assert "1 line skipped" in output and "sc#1" not in output.replace("1 line skipped", "")
