"""The queue between consumers and the console: it never blocks, counts what it drops, renders elsewhere."""

import io
import json
import logging
import re
import threading
import time

from channels.testing import WebsocketCommunicator
from rich.console import Console

from explorer.asgi import application
from explorer.trace.handlers import QueuedTraceHandler
from tests.conftest import ROOT, read_records


class GatedFile(io.StringIO):
    """A console file that holds every write until the gate opens, and notes the writing threads."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.threads = set()

    def write(self, text):
        self.threads.add(threading.current_thread().name)
        self.gate.wait(timeout=30)
        return super().write(text)


def gated_handler(queue_size):
    file = GatedFile()
    console = Console(file=file, width=200, color_system=None)
    return QueuedTraceHandler(queue_size=queue_size, console=console), file


def record(n):
    return logging.LogRecord("explorer.trace", logging.INFO, __file__, 0, "record %d", (n,), None)


def test_a_full_queue_drops_records_and_says_how_many():
    handler, file = gated_handler(queue_size=5)
    for n in range(100):
        handler.handle(record(n))  # would hang here if a full queue blocked
    assert handler.dropped > 0
    file.gate.set()
    handler.flush()
    handler.handle(record(100))  # the first record through after the drops carries the count
    handler.close()
    lines = file.getvalue().splitlines()
    shown = [line for line in lines if line.startswith("record ")]
    [notice] = [line for line in lines if "dropped" in line]
    assert notice == f"⚠ trace: {handler.dropped:,} records dropped (queue full)"
    assert len(shown) + handler.dropped == 101
    assert shown[-1] == "record 100"


def test_drops_still_pending_at_close_are_reported():
    handler, file = gated_handler(queue_size=1)
    for n in range(10):
        handler.handle(record(n))
    file.gate.set()
    handler.close()
    assert f"⚠ trace: {handler.dropped:,} records dropped (queue full)" in file.getvalue()


def test_rendering_happens_on_the_listener_thread():
    handler, file = gated_handler(queue_size=100)
    file.gate.set()
    handler.handle(record(1))
    handler.close()
    assert file.threads == {"explorer.trace"}


async def test_a_consumer_never_waits_for_the_console(endpoint):
    handler, file = gated_handler(queue_size=10)
    logger = logging.getLogger("explorer.trace")
    logger.addHandler(handler)
    try:
        # The console is stuck for the whole session, yet every echo comes back.
        client = WebsocketCommunicator(application, f"/ws/{endpoint}/")
        await client.connect()
        for n in range(200):
            await client.send_to(text_data=f"message {n}")
            assert await client.receive_from() == f"message {n}"
        await client.disconnect()
        assert handler.dropped > 0
    finally:
        file.gate.set()
        logger.removeHandler(handler)
        handler.close()
    assert "records dropped (queue full)" in file.getvalue()
    assert file.threads == {"explorer.trace"}


def test_a_record_that_fails_to_render_does_not_stop_the_listener():
    handler, file = gated_handler(queue_size=100)
    file.gate.set()
    broken = record(1)
    broken.trace = object()  # not a TraceEntry
    handler.handle(broken)
    handler.handle(record(2))
    handler.close()
    assert "record 2" in file.getvalue()


def weighed(n, weight):
    entry = record(n)
    entry.trace_weight = weight
    return entry


def test_the_queue_is_bounded_in_bytes_too():
    handler, file = gated_handler(queue_size=1000)
    handler.queue_bytes = 1000
    for n in range(5):
        handler.handle(weighed(n, 400))  # two fit, three do not
    assert handler.held == 800
    assert handler.dropped == 3
    file.gate.set()
    handler.flush()
    assert handler.held == 0  # released as the listener is done with each
    handler.handle(weighed(9, 400))  # it fits again, and carries the count
    handler.close()
    assert "⚠ trace: 3 records dropped" in file.getvalue()


async def test_a_stuck_console_does_not_hold_the_payloads(endpoint):
    """Reported: with EXPLORER_TRACE=full and a stuck console, echoing 1 MiB frames reached 3.4 GiB."""
    import tracemalloc

    from django.test import override_settings

    handler, file = gated_handler(queue_size=10_000)
    logger = logging.getLogger("explorer.trace")
    logger.addHandler(handler)
    try:
        with override_settings(EXPLORER_TRACE={"MODE": "full"}):
            client = WebsocketCommunicator(application, f"/ws/{endpoint}/")
            await client.connect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for n in range(20):
                payload = f"{n:02}" + "x" * (1024 * 1024)  # a new string each time, as from a real client
                await client.send_to(text_data=payload)
                assert await client.receive_from() == payload
                del payload
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            await client.disconnect()
        # 40 records of a 1 MiB payload each are waiting for the console, none of them holding it.
        assert held < 4 * 1024 * 1024, f"{held / 1024 / 1024:.1f} MiB held"
    finally:
        logger.removeHandler(handler)
        file.gate.set()
        handler.close()


FULL_DISK = """
import asyncio, django, os
django.setup()
from channels.testing import WebsocketCommunicator
from explorer.asgi import application

async def main():
    client = WebsocketCommunicator(application, "/ws/ac/")
    await client.connect()
    for n in range(3):
        await client.send_to(text_data=f"still served {n}")
        assert await client.receive_from() == f"still served {n}"
    await client.disconnect()
    print("served")

asyncio.run(main())
"""


def test_a_sink_that_fails_says_so_once_and_serving_goes_on():
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings", "EXPLORER_TRACE_FILE": "/dev/full"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "served"
    said = [line for line in result.stderr.splitlines() if line.startswith("explorer.trace:")]
    # The console's summary and the process's pauses, as it stops.
    [summary] = [line for line in said if " records shown; from line made to screen: " in line]
    [pauses] = [line for line in said if " paused the process: " in line]
    said.remove(summary)
    said.remove(pauses)
    assert said == [
        "explorer.trace: recording to /dev/full failed (OSError: [Errno 28] No space left on device); "
        "it stops, serving goes on"
    ]
    assert "still served 2" in result.stderr  # the console goes on
    assert "Traceback" not in result.stderr


def test_a_recording_read_while_it_is_written_gives_whole_records_only(tmp_path):
    """The tests read a server's recording while its listener appends to it: a line caught half
    written is left for the next read, even when the rest of it lands between two reads of the file."""
    path = tmp_path / "trace.jsonl"
    lines = 500
    done = threading.Event()

    def write_lines_in_halves():
        with open(path, "ab", buffering=0) as file:
            for n in range(lines):
                line = json.dumps({"connection": "sc#1", "kind": "in", "n": n}).encode() + b"\n"
                file.write(line[:20])
                time.sleep(0.0002)  # let the reader find the half line at the end of the file
                file.write(line[20:])
        done.set()

    writer = threading.Thread(target=write_lines_in_halves)
    writer.start()
    try:
        while not done.is_set():
            records = read_records(path, "sc#1")
            assert [r["n"] for r in records] == list(range(len(records)))
    finally:
        writer.join()
    assert len(read_records(path, "sc#1")) == lines


def test_the_consoles_lag_is_timed_from_the_line_made_and_the_events_wait_beside_it():
    """An event that waited two seconds for its handler is made into a line as the handler starts:
    the console's lag counts from then; the time from the event itself keeps the wait."""
    from explorer.trace.config import trace_config
    from explorer.trace.entry import TraceEntry
    from explorer.trace.handlers import ScreenLatency

    now = time.time()
    latency = ScreenLatency()
    entry = TraceEntry("ac#1", "in", 0.0, {"type": "websocket.receive"}, trace_config(), at=now - 2, made=now)
    latency.made(entry)
    latency.shown()
    made, event = re.findall(r"p99 ([\d.]+) ms", latency.summary())
    assert float(event) - float(made) >= 1900


async def test_a_connection_still_open_as_the_process_ends_is_said_with_what_it_never_handled(
    trace, endpoint
):
    """The trace's end (``ending``) says each connection whose application never ended, and the events
    it received but never handled, rather than stop its story mid-way; a connection that ended is not
    said again."""
    from explorer.trace.connection import still_open

    ended = WebsocketCommunicator(application, f"/ws/{endpoint}/")
    await ended.connect()
    await ended.disconnect()
    client = WebsocketCommunicator(application, f"/ws/{endpoint}/")
    await client.connect()
    await client.send_to(text_data="hello")
    assert await client.receive_from() == "hello"
    open_one = next(r["connection"] for r in reversed(trace.records()) if r["kind"] == "scope")
    trace.handler.flush()
    still_open()  # as the trace's end does, before its queue closes
    still_open()  # said once
    records = trace.records()
    notes = [r for r in records if r["kind"] == "note" and "the process is ending" in r.get("note", "")]
    assert [r["connection"] for r in notes] == [open_one]
    assert notes[0]["note"].startswith("the process is ending with this connection open")
    await client.disconnect()


async def test_an_event_received_but_not_yet_handled_as_the_process_ends_is_said(trace, endpoint):
    """The trace sees an event as the server hands it over and shows it as its handler starts: one the
    process ends before handling is still shown, with why it was never handled."""
    from dataclasses import replace

    from consumers.async_consumer import ExplorerAsyncConsumer
    from consumers.sync_consumer import ExplorerSyncConsumer
    from explorer.trace.config import trace_config
    from explorer.trace.connection import ConnectionTrace, still_open

    scope = {"type": "websocket", "path": f"/ws/{endpoint}/", "headers": [], "subprotocols": []}

    async def receive():
        return {"type": "websocket.receive", "text": "never handled"}

    connection = ConnectionTrace(scope, replace(trace_config(), mode="compact"))
    consumer = {"sc": ExplorerSyncConsumer, "ac": ExplorerAsyncConsumer}[endpoint]()
    connection.consumer_started(consumer, scope)
    event = await connection.wrap_receive(receive)()  # handed over; its handler has not started
    still_open()
    records = trace.records(connection.name)
    assert [(r["kind"], r.get("note", "")[:45]) for r in records[-2:]] == [
        ("in", "received, not handled yet as the process ends"),
        ("note", "the process is ending with this connection op"),
    ]
    assert records[-2]["event"] == {"type": "websocket.receive", "text": "never handled"}
    # A handler still running as the process ends (a sync one, on its thread) may take it yet: its line
    # then says how long it really waited.
    connection.handler_started(event)
    [late] = trace.records(connection.name)[len(records) :]
    assert late["kind"] == "in" and late["wait"] > 0


def test_a_batch_of_entries_alone_goes_to_the_renderer_as_queued_and_anything_else_is_laid_out(
    monkeypatch,
):
    """The queue counts what is not an entry's values (a logging record; a scope, which may hold an
    application's objects): a batch with none goes to the renderer as it was queued, with no step per
    record; a batch with any has each item made into what the renderer takes."""
    from explorer.trace import renderer
    from explorer.trace.config import TraceConfig
    from explorer.trace.entry import TraceEntry, values_of
    from explorer.trace.renderer import RendererProcess

    laid_out = []

    def item(record, item=renderer.item):
        laid_out.append(record)
        return item(record)

    monkeypatch.setattr(renderer, "item", item)

    handler, file = gated_handler(queue_size=100)
    file.gate.set()
    handler.listener.stopping.set()  # the test takes the batches itself
    handler.listener.join()
    config = TraceConfig(mode="compact")
    message = values_of(TraceEntry("sc#1", "in", 0.5, {"type": "websocket.receive", "text": "hi"}, config))
    scope = values_of(TraceEntry("sc#1", "scope", 0.0, {"type": "websocket", "user": object()}, config))

    handler.enqueue(message, 10, usual=True)
    handler.enqueue(message, 20, usual=True)
    batch = handler.taken()
    assert (list(batch.items), list(batch.weights), batch.weight, batch.plain) == (
        [message, message],
        [10, 20],
        30,
        True,
    )
    shipper = RendererProcess(None, list)
    shipper.take(batch)
    assert shipper.items == [message, message] and not laid_out  # the very tuples queued, untouched

    handler.enqueue(message, 10, usual=True)
    handler.enqueue(scope, 10)  # as connection.deliver queues a scope
    handler.handle(record(1))
    batch = handler.taken()
    assert not batch.plain
    shipper = RendererProcess(None, list)
    shipper.take(batch)
    assert len(laid_out) == 3 and shipper.items[0] is message
    assert shipper.items[1][0] == "record" and shipper.items[1][1].recorded  # laid out in this process
    assert shipper.items[2][0] == "message"
    assert handler.taken().plain  # an empty batch: nothing unusual left counted
    handler.listening = False
    handler.close()


async def test_connections_still_open_at_the_end_are_said_though_the_listener_had_stopped(tmp_path, endpoint):
    """The queue's end says the connections still open before it stops taking records: a listener that a
    logging reconfiguration had closed is started again for them, not left with them waiting."""
    from dataclasses import replace

    from consumers.async_consumer import ExplorerAsyncConsumer
    from consumers.sync_consumer import ExplorerSyncConsumer
    from explorer.trace.config import trace_config
    from explorer.trace.connection import ConnectionTrace
    from tests.conftest import TraceCapture

    capture = TraceCapture(tmp_path / "trace.jsonl")
    logger = logging.getLogger("explorer.trace")
    others = logger.handlers[:]
    logger.handlers = [capture.handler]
    try:
        scope = {"type": "websocket", "path": f"/ws/{endpoint}/", "headers": [], "subprotocols": []}
        connection = ConnectionTrace(scope, replace(trace_config(), mode="compact"))
        consumer = {"sc": ExplorerSyncConsumer, "ac": ExplorerAsyncConsumer}[endpoint]()
        connection.consumer_started(consumer, scope)
        capture.handler.close()  # as logging.config.dictConfig closes it: its listener stops
        capture.handler.exit()
    finally:
        logger.handlers = others
    kinds = [record["kind"] for record in read_records(capture.recording, connection.name)]
    assert kinds == ["scope", "note"]


def test_a_listener_started_again_counts_what_the_one_before_it_handed_on():
    """A flush after a logging reconfiguration closed the handler and its listener started again waits for
    the records taken in since, not for every record the process ever took in (it waited forever)."""
    handler, file = gated_handler(queue_size=100)
    file.gate.set()
    for n in range(3):
        handler.handle(record(n))
    handler.flush()
    handler.close()  # as logging.config.dictConfig closes it: its listener stops
    handler.handle(record(3))  # and starts again for the next record
    assert handler.listener.wait_for(handler.accepted, timeout=10)
    handler.close()
    assert [line for line in file.getvalue().splitlines() if line.startswith("record ")][-1] == "record 3"


def test_records_from_two_threads_after_a_close_start_one_listener(monkeypatch):
    """After a logging reconfiguration closed the handler, the next records may come from the event loop
    and a worker thread at once: one listener starts, not one per thread (two would hand batches to the
    same sinks at once)."""
    from explorer.trace import handlers

    handler, file = gated_handler(queue_size=100)
    file.gate.set()
    handler.close()  # as logging.config.dictConfig closes it: its listener stops
    started = []
    slow_start = handlers.TraceListener.start

    def start(listener):  # a listener that takes a while to start: the other thread comes meanwhile
        started.append(listener)
        time.sleep(0.2)
        slow_start(listener)

    monkeypatch.setattr(handlers.TraceListener, "start", start)
    together = threading.Barrier(2)

    def send(n):
        together.wait()
        handler.handle(record(n))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.flush(timeout=10)
    handler.close()
    assert len(started) == 1
    assert sorted(line for line in file.getvalue().splitlines() if line.startswith("record ")) == [
        "record 0",
        "record 1",
    ]


def test_a_terminals_compact_lines_are_written_together_with_their_styles(endpoint):
    """On a terminal, a batch of compact lines goes out in one write, as a file's do (one per line, through
    Rich's print, was most of a terminal's trace), and keeps its colours."""
    from explorer.trace.config import TraceConfig
    from explorer.trace.connection import TraceRecord
    from explorer.trace.entry import TraceEntry
    from explorer.trace.handlers import RichTraceHandler

    class Writes(io.StringIO):
        count = 0

        def write(self, text):
            self.count += 1
            return super().write(text)

    file = Writes()
    console = Console(file=file, width=120, force_terminal=True, color_system="truecolor", markup=False)
    sink = RichTraceHandler(console)
    config = TraceConfig(mode="compact")
    for n in range(10):
        event = {"type": "websocket.receive", "text": f"hello {n}"}
        sink.handle(
            TraceRecord(TraceEntry(f"{endpoint}#1", "in", n / 10, event, config, thread="MainThread"))
        )
    sink.flush()
    assert file.count == 1
    lines = file.getvalue().splitlines()
    assert len(lines) == 10 and "\x1b[32m" in lines[0]  # the arrow's green
    assert re.sub(r"\x1b\[[0-9;]*m", "", lines[9]).endswith(
        f"{endpoint}#1   → in     websocket.receive    [MainThread] {{'text': 'hello 9'}}"
    )


def test_a_console_that_records_for_a_picture_gets_every_line_through_rich(endpoint):
    """A console kept for a picture (``record=True``) is printed to by Rich itself: lines written past it,
    as a terminal's are, would be missing from what it exports."""
    from explorer.trace.config import TraceConfig
    from explorer.trace.connection import TraceRecord
    from explorer.trace.entry import TraceEntry
    from explorer.trace.handlers import RichTraceHandler

    console = Console(file=io.StringIO(), width=120, force_terminal=True, record=True, markup=False)
    sink = RichTraceHandler(console)
    for mode in ("compact", "full"):
        event = {"type": "websocket.receive", "text": f"hello {mode}"}
        entry = TraceEntry(f"{endpoint}#1", "in", 0.1, event, TraceConfig(mode=mode), thread="MainThread")
        sink.handle(TraceRecord(entry))
    sink.flush()
    pictured = console.export_text()
    assert "'text': 'hello compact'" in pictured and "'text': 'hello full'" in pictured


def test_a_terminal_too_narrow_for_full_modes_indent_or_a_quiet_console_is_left_to_rich(endpoint):
    """Full mode on a terminal narrower than its indent leaves the event no room: Rich prints what it can
    (its header), as before, and the sink does not fail on it; a quiet console gets nothing written past
    Rich; a record says what it is."""
    from explorer.trace.config import TraceConfig
    from explorer.trace.connection import TraceRecord
    from explorer.trace.entry import TraceEntry
    from explorer.trace.handlers import RichTraceHandler
    from explorer.trace.renderer import ShippedRecord

    def entry(mode):
        event = {"type": "websocket.receive", "text": "hello"}
        return TraceEntry(f"{endpoint}#1", "in", 0.1, event, TraceConfig(mode=mode), thread="MainThread")

    narrow = Console(file=io.StringIO(), width=8, force_terminal=True, color_system=None, markup=False)
    sink = RichTraceHandler(narrow)
    sink.handle(TraceRecord(entry("full")))
    sink.flush()
    assert not sink.failed and "websocket.receive" in narrow.file.getvalue()
    quiet = Console(file=io.StringIO(), width=120, force_terminal=True, quiet=True)
    sink = RichTraceHandler(quiet)
    for mode in ("compact", "full"):
        sink.handle(TraceRecord(entry(mode)))
    sink.flush()
    assert quiet.file.getvalue() == ""
    assert "explorer.trace" in repr(ShippedRecord(entry("compact")))


async def test_a_queued_line_is_not_one_the_garbage_collector_follows(endpoint):
    """A line waits in the queue for the listener's next batch, long enough for a young collection or two
    to carry it into the oldest generation if the collector follows it: each line so carried brought the
    process's next full collection (tens of milliseconds, every thread stopped) that much closer. An echo's
    lines hold plain values only (``entry.CONFIGS``), so one collection lets them all go, and they are the
    same lines."""
    import gc

    from explorer.bench.cost import queued_records
    from explorer.trace.connection import logging_record

    queued = await queued_records(f"explorer-{endpoint}-compact", 5)
    gc.collect()  # one collection, which comes to a tuple's tuples after the tuple itself
    followed = [item for item in queued if gc.is_tracked(item)]
    assert followed == []
    entries = [logging_record(item).trace for item in queued]
    assert [entry.kind for entry in entries].count("done") == 5
    received, sent = (
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.send", "text": "hello"},
    )
    assert [entry.event for entry in entries if entry.kind in ("in", "out")] == [received, sent] * 5
    assert {entry.config.mode for entry in entries} == {"compact"}
