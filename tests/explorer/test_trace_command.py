"""``manage.py trace``: a recording rendered, filtered and diffed, from real sessions on both endpoints."""

import json
from io import StringIO

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command

from explorer.asgi import application

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
    assert output.rstrip().endswith("4 lines skipped (not trace records)")


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
