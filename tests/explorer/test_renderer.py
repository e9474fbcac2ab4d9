"""The renderer process: the server's records, shipped through a pipe, reach the console and the recording."""

import json
import os
import subprocess
import sys
import time

import pytest

from explorer.trace.config import TraceConfig
from explorer.trace.entry import TraceEntry, values_of
from explorer.trace.renderer import HEADER, RendererProcess, as_log_record, item, pickled, shipped_record
from tests.conftest import ROOT

COMPACT = TraceConfig(mode="compact", max_payload=50)


def received(n):
    event = {"type": "websocket.receive", "text": f"message {n}"}
    return as_log_record("record", TraceEntry("sc#1", "in", 0.5, event, COMPACT), None, 0)


def renderer(recording, stderr):
    origin = json.dumps({"pid": 4242, "command": "the server", "started": 1767225600.0})
    return subprocess.Popen(
        [sys.executable, "-m", "explorer.trace.renderer", "--origin", origin, "--file", str(recording)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings"},
        stdin=subprocess.PIPE,
        stderr=stderr,
    )


def test_what_the_server_ships_is_rendered_and_recorded_under_its_run(tmp_path):
    recording = tmp_path / "trace.jsonl"
    process = renderer(recording, subprocess.PIPE)
    data = pickled([item(received(n)) for n in range(3)])
    process.stdin.write(HEADER.pack(len(data)) + data)
    process.stdin.close()  # the server stops: the renderer writes everything out, then ends
    console = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert all(f"'message {n}'" in console for n in range(3))
    assert "Warning" not in console  # runpy's, when the package imports the module it runs with -m
    [header, *records] = [json.loads(line) for line in recording.read_text().splitlines()]
    assert header["kind"] == "run" and header["pid"] == 4242  # the server's process, not the renderer's
    assert header["started"] == "2026-01-01T00:00:00.000000+00:00"
    assert [r["event"]["text"] for r in records] == ["message 0", "message 1", "message 2"]


def test_a_closed_console_does_not_stop_the_recording(tmp_path):
    recording = tmp_path / "trace.jsonl"
    read, write = os.pipe()
    os.close(read)  # whoever read the server's stderr has gone
    process = renderer(recording, write)
    os.close(write)
    for batch in range(3):
        data = pickled([item(received(batch * 300 + n)) for n in range(300)])
        process.stdin.write(HEADER.pack(len(data)) + data)
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    records = [json.loads(line) for line in recording.read_text().splitlines()][1:]
    assert len(records) == 900


def test_a_renderer_that_cannot_start_leaves_the_trace_in_this_process(tmp_path, capfd):
    recording = tmp_path / "trace.jsonl"

    def local_sinks():
        from explorer.trace.handlers import JsonLinesTraceHandler

        return [JsonLinesTraceHandler(recording)]

    sink = RendererProcess(recording, local_sinks)
    sink.start = lambda: (_ for _ in ()).throw(OSError("no such program"))
    for n in range(2):
        sink.handle(received(n))
    sink.flush()
    sink.handle(received(2))
    sink.close()
    said = [line for line in capfd.readouterr().err.splitlines() if line.startswith("explorer.trace:")]
    assert said == [
        "explorer.trace: the trace's renderer process failed (OSError: no such program); "
        "the trace is rendered in this process from now on"
    ]
    records = [json.loads(line) for line in recording.read_text().splitlines()][1:]
    assert [r["event"]["text"] for r in records] == ["message 0", "message 1", "message 2"]


def test_a_renderer_that_dies_leaves_one_run_in_the_recording(tmp_path, capfd):
    """The server's process takes over the recording where its renderer left off: the same run."""
    from explorer.trace.handlers import JsonLinesTraceHandler

    recording = tmp_path / "trace.jsonl"
    sink = RendererProcess(recording, lambda: [JsonLinesTraceHandler(recording)])
    sink.handle(received(0))
    sink.flush()
    deadline = time.monotonic() + 60
    while len(recording.read_text().splitlines() if recording.exists() else ()) < 2:
        assert time.monotonic() < deadline, "the renderer wrote nothing"
        time.sleep(0.05)
    sink.process.kill()
    sink.process.wait()
    for n in (1, 2):
        sink.handle(received(n))
        sink.flush()
    sink.close()
    records = [json.loads(line) for line in recording.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["run", "in", "in", "in"]
    assert {r["run"] for r in records} == {1}
    assert [r["event"]["text"] for r in records[1:]] == ["message 0", "message 1", "message 2"]


SECRET_SCOPE = {
    "type": "websocket",
    "path": "/ws/ac/",
    "query_string": b"token=s3cr3t-query",
    "headers": [(b"authorization", b"Bearer s3cr3t-token"), (b"host", b"x")],
    "client": ["127.0.0.1", 5000],
}


class Visitor:
    """An application's object in a scope (a user, say): it is shown in the server's process."""

    def __repr__(self):
        return "<Visitor>"


def test_a_scope_of_plain_data_is_shown_by_the_renderer_exactly_as_the_server_would_show_it():
    """A scope holding only Python's own data types goes down the pipe as it is (the server's process
    need not lay it out); what the renderer records and shows is what the server would have, secrets
    hidden. One holding an application's object is laid out in the server's process, as before."""
    from explorer.trace.recording import record_of
    from explorer.trace.renderer import as_shown

    plain = TraceEntry("ac#1", "scope", 0.0, SECRET_SCOPE, COMPACT)
    visited = TraceEntry("ac#2", "scope", 0.0, {**SECRET_SCOPE, "user": Visitor()}, COMPACT)
    queued = [as_queued(entry) for entry in (plain, visited)]
    shipped = [shipped_record(pickled_back(item(values))) for values in queued]
    assert item(queued[0]) is queued[0] and item(queued[1])[0] == "record"
    for entry, record in zip((plain, visited), shipped, strict=True):
        expected = record_of(as_log_record("record", as_shown(entry), None, 0))
        assert record_of(record) == expected
        assert "s3cr3t" not in json.dumps(expected) and "<redacted>" in json.dumps(expected)
    assert "<Visitor>" in json.dumps(record_of(shipped[1]))


def as_queued(entry):
    """An entry's values as the consumer's path queues them (``entry.CONFIGS``): its config by number, and
    its event's keys and values after the fields."""
    import itertools

    from explorer.trace.entry import CONFIG, EVENT, FIELDS, config_number, entry_of

    values = values_of(entry)
    queued = (
        *values[:EVENT],
        None,
        -1 - config_number(entry.config),
        *values[CONFIG + 1 : len(FIELDS)],
        *itertools.chain.from_iterable(entry.event.items()),
    )
    assert entry_of(queued) == entry
    return queued


def pickled_back(shipped):
    import pickle

    [back] = pickle.loads(pickled([shipped]))
    return back


@pytest.mark.parametrize("held_back", [False, True], ids=["after the scope", "held until the scope"])
def test_each_detail_a_line_is_emitted_with_lands_in_its_own_field(held_back):
    """``ConnectionTrace.emit`` makes the entry's values positionally, in the fields' order: each detail
    it names must reach the field of that name, and what it fills in itself its own, also for a line
    held back until the scope is out."""
    import inspect
    import logging
    from dataclasses import replace

    from explorer.trace.config import trace_config
    from explorer.trace.connection import NOT_DETAILS, TRACE_STARTED, ConnectionTrace
    from explorer.trace.entry import FIELDS

    trace = ConnectionTrace(SECRET_SCOPE, replace(trace_config(), mode="compact"))
    details = [name for name in inspect.signature(ConnectionTrace.emit).parameters if name not in NOT_DETAILS]
    assert set(details) < set(FIELDS)
    given = {name: f"value of {name}" for name in details}
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("explorer.trace")
    saved = logger.handlers[:]
    logger.handlers = [Keep()]
    try:
        trace.scope_shown = not held_back
        trace.emit("note", None, 1.5, **given)
        if held_back:
            trace.show_scope()
    finally:
        logger.handlers = saved
    [entry] = [record.trace for record in records if record.trace.kind == "note"]
    assert {name: getattr(entry, name) for name in details} == given
    assert (entry.kind, entry.event, entry.seconds, entry.connection) == ("note", None, 1.5, trace.name)
    assert (entry.config, entry.recorded, entry.started) == (trace.config, False, TRACE_STARTED)
    assert entry.at == trace.opened_at + 1.5 and entry.made >= entry.at - 1.5


# A server's process, in short: it builds its application (explorer.bench.app wraps each subject in
# TraceMiddleware, as a project's asgi.py does) and says whether its renderer is running before any
# connection; it logs a line on the trace's logger, forks at once (as gunicorn --preload does, before
# serving anything) and serves one connection in each process.
FORKING_SERVER = """
import asyncio, logging, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
django.setup()
from channels.testing import WebsocketCommunicator
from explorer.bench.app import SUBJECTS
from explorer.serving import RENDERER, children, command_line

subject = f"explorer-{sys.argv[1]}-compact"

def renderers():
    return [pid for pid in children(os.getpid()) if RENDERER in command_line(pid)]

async def talk(text):
    communicator = WebsocketCommunicator(SUBJECTS[subject], f"/bench/{subject}/")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=text)
    await communicator.receive_from()
    await communicator.disconnect()

deadline = time.monotonic() + 15
while not renderers() and time.monotonic() < deadline:
    time.sleep(0.05)
print("renderer before any connection:", bool(renderers()), flush=True)
logging.getLogger("explorer.trace").info("said before the fork")
child = os.fork()
asyncio.run(talk("said in the child" if child == 0 else "said in the parent"))
if child:
    os.waitpid(child, 0)
"""


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_server_starts_its_renderer_as_it_builds_its_application_and_a_fork_gets_its_own(endpoint):
    """The renderer is running before the first connection, so its lines do not wait a process's start
    (a few hundred ms, all the first connections' lines behind it). A worker forked after that (gunicorn
    --preload) traces with a listener and a renderer of its own, and what the parent had queued
    before the fork is shown once, not once more by the child."""
    done = subprocess.run(
        [sys.executable, "-c", FORKING_SERVER, endpoint],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "explorer.settings",
            "EXPLORER_TRACE_RENDERER": "process",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "renderer before any connection: True" in done.stdout
    lines = done.stderr.splitlines()
    assert lines.count("said before the fork") == 1, done.stderr[-3000:]
    received = [line for line in lines if "→ in" in line and "websocket.receive" in line]
    for said in ("said in the child", "said in the parent"):
        assert sum(f"'{said}'" in line for line in received) == 1, done.stderr[-3000:]


async def test_a_renderer_started_again_is_sent_the_configs_its_lines_name(tmp_path, capfd, endpoint):
    """The consumer's path queues a line's config by its number (``entry.CONFIGS``), and each renderer
    process is sent the configs before the first line that names one. A renderer stopped (the handler
    closed by a logging reconfiguration) and started again is a new process that knows none: it is sent
    them again (the first renderer's were taken as sent, and the second died on the first line)."""
    from explorer.bench.cost import queued_records
    from explorer.trace.handlers import Batch

    recording = tmp_path / "trace.jsonl"
    queued = await queued_records(f"explorer-{endpoint}-compact", 2)
    shipper = RendererProcess(recording, list)
    for _ in range(2):
        shipper.take(Batch(queued, [0] * len(queued), 0, True))
        shipper.flush()
        shipper.stop()  # the renderer writes out what it was sent, and ends
    assert shipper.local is None  # never failed over to rendering here
    records = [json.loads(line) for line in recording.read_text().splitlines()]
    assert len([record for record in records if record.get("kind") == "in"]) == 2 * 2  # both renderers'
    err = capfd.readouterr().err
    assert "Traceback" not in err and "failed" not in err
