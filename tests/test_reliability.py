"""Under churn, faults and shutdown: the server keeps serving, every connection ends traced, nothing leaks.

The heavy tests are marked ``heavy``: ``pytest -m heavy`` runs them apart,
``pytest -m "not heavy"`` skips them; ``make test`` and CI run everything.
"""

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from explorer.bench.scenarios import PAUSES
from explorer.serving import MAIN, SERVERS
from tests.conftest import ROOT, WIRE_ENV, DaphneServer, TracedServer, free_port, read_records

CHURN_CYCLES = 5000
CHURN_AT_ONCE = 50


def threads_and_files(pid):
    with open(f"/proc/{pid}/status") as file:
        status = file.read()
    threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def reset(ws):
    """Drop the connection the rude way: a TCP reset, no close frame."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.heavy
async def test_churn_every_cycle_ends_traced_and_nothing_grows(tmp_path):
    recording = tmp_path / "trace.jsonl"
    daphne = DaphneServer(recording, **WIRE_ENV)
    try:
        pid = daphne.process.pid
        tasks_before = (await stats(daphne))["asyncio_tasks"]
        # That first traced connection started the trace's listener thread and its renderer process
        # (a pipe): the baseline is taken once they run, whenever the machine lets them start.
        assert wait_until(lambda: read_records(recording), timeout=30)
        baseline = threads_and_files(pid)
        limit = asyncio.Semaphore(CHURN_AT_ONCE)

        async def cycle(n):
            endpoint = "sc" if n % 2 else "ac"
            async with limit:
                ws = await connect(daphne.url(endpoint), open_timeout=30)
                await ws.send(f"cycle {n}")
                assert await ws.recv() == f"cycle {n}"
                if n % 3 == 0:
                    reset(ws)  # abrupt: no close frame
                else:
                    await ws.close()

        await asyncio.wait_for(asyncio.gather(*(cycle(n) for n in range(CHURN_CYCLES))), 600)

        def all_exited():
            ended = [r for r in read_records(recording) if r["kind"] in ("exit", "error")]
            return len(ended) >= CHURN_CYCLES + 1  # and the connection that asked for /stats

        assert wait_until(all_exited, timeout=60)
        records = read_records(recording)
        asking = {
            r["connection"] for r in records if r["kind"] == "in" and r["event"].get("text") == "/stats"
        }
        records = [r for r in records if r["connection"] not in asking]
        scopes = {r["connection"] for r in records if r["kind"] == "scope"}
        disconnects = {
            r["connection"]
            for r in records
            if r["kind"] == "in" and r["event"]["type"] == "websocket.disconnect"
        }
        exits = {r["connection"]: r["note"] for r in records if r["kind"] in ("exit", "error")}
        assert len(scopes) == CHURN_CYCLES
        assert disconnects == scopes == set(exits)
        assert all(note == "consumer returned; no ASGI rule broken" for note in exits.values())
        abrupt = [r for r in records if r["kind"] == "in" and r["event"].get("code") == 1006]
        assert len(abrupt) == len(range(0, CHURN_CYCLES, 3))  # each reset seen as 1006

        # Nothing grows: threads and open files are back where they were.
        def back_to_baseline():
            threads, files = threads_and_files(pid)
            return threads <= baseline[0] + 1 and files <= baseline[1]

        assert wait_until(back_to_baseline, timeout=30), (baseline, threads_and_files(pid))
        assert (await stats(daphne))["asyncio_tasks"] <= tasks_before
    finally:
        daphne.stop()


@pytest.mark.heavy
async def test_a_client_that_stops_reading_does_not_stall_the_others(server, endpoint):
    stuck = await connect(server.url(endpoint), max_queue=1, max_size=None)
    try:
        await stuck.send("/burst 1000 65536")  # 64 MiB the client never reads
        async with connect(server.url(endpoint)) as other:
            for n in range(50):
                await other.send(f"still here {n}")
                assert await asyncio.wait_for(other.recv(), 10) == f"still here {n}"
        async with connect(server.url("ac" if endpoint == "sc" else "sc")) as across:
            await across.send("and here")
            assert await asyncio.wait_for(across.recv(), 10) == "and here"
    finally:
        reset(stuck)


@contextlib.contextmanager
def started_as_from_a_terminal():
    """SIGINT at its default for the processes started inside, as a terminal's shell starts them. A test
    run that ignores it (a non-interactive shell's background job does) passes that on to the server,
    whose Python and Twisted then leave Ctrl-C ignored: the server never stops."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize("command", ["daphne", "make run"])
async def test_stopping_with_connections_open_is_clean_and_the_recording_complete(tmp_path, stop, command):
    """Every client is told (1001), every consumer ends and is traced, the process exits 0 (daphne_fixes.py).

    ``make run`` is ``manage.py runserver --noreload``, signalled as a terminal's Ctrl-C is: the whole
    process group.
    """
    recording = tmp_path / "trace.jsonl"
    with started_as_from_a_terminal():
        server = DaphneServer(recording, **WIRE_ENV) if command == "daphne" else RunserverProcess(recording)
    closes = []
    try:
        async with connect(server.url("ac")) as first, connect(server.url("sc")) as second:
            for ws in (first, second):
                await ws.send("hello")
                assert await ws.recv() == "hello"
            os.killpg(server.process.pid, stop) if command == "make run" else server.process.send_signal(stop)
            for ws in (first, second):
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 30)
                closes.append((ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason))
            assert await asyncio.to_thread(server.process.wait, 30) == 0
    finally:
        server.stop()
    assert closes == [(1001, "server shutting down")] * 2
    data = recording.read_bytes()
    assert data.endswith(b"\n")
    records = [json.loads(line) for line in data.decode().splitlines()]
    records = [r for r in records if r["kind"] not in ("run", "server")]  # the process's, not a connection's
    ended = {r["connection"]: r["note"] for r in records if r["kind"] in ("exit", "error")}
    assert {r["connection"] for r in records} == set(ended)
    assert len(ended) == 2
    assert all(note.startswith("consumer ") for note in ended.values())


@pytest.mark.parametrize("kind", MAIN)
async def test_a_server_stopped_by_sigterm_says_the_whole_trace(tmp_path, kind, endpoint):
    """However the server's process ends, the trace's own end runs: its last lines are recorded and it
    says its closing figures (the garbage collections that paused the process, which the bench reads).

    uvicorn shuts down, then raises SIGTERM again with its default action, and granian's workers leave
    by ``os._exit``: neither runs ``atexit``, where the trace ended, and the lines still queued (the
    connection's last ones, made as the server closed it) were lost. granian drops the connection and
    ends its worker, whether or not its application has ended by then: when it has not, the trace says
    the process is ending with the connection open, rather than stop mid-story.
    """
    server = TracedServer(kind, tmp_path / "trace.jsonl", **WIRE_ENV)
    try:
        async with connect(server.url(endpoint)) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            connection = server.connection_of(ws.local_address[1])
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)
        await asyncio.to_thread(server.process.wait, 30)
        server.reader.join(10)  # everything the server's process group wrote, read
    finally:
        server.stop()
    records = read_records(server.recording, connection)
    said = "\n".join(server.lines)
    ended = [r for r in records if r["kind"] in ("exit", "error")]
    if kind == "granian" and not ended:  # its worker ended before the application did
        # Said as the process ended; a sync handler still running then may have added lines after it.
        [note] = [r for r in records if r["kind"] == "note"]
        assert note["note"].startswith("the process is ending with this connection open"), said[-3000:]
    else:
        assert records[-1]["kind"] in ("exit", "error"), said[-3000:]
    assert re.search(PAUSES, said), said[-3000:]


async def test_stopping_while_a_handler_sleeps_lets_the_sync_thread_finish_then_exits(tmp_path, endpoint):
    """A sync handler cannot be cancelled: daphne waits for the sync thread, then cancels (daphne_fixes.py).

    Cancelled at once, the sync handler's ``send`` would wait for ever for the stopped loop, and the
    interpreter for that thread: the process never exited. An async handler is cancelled, and says so.
    """
    recording = tmp_path / "trace.jsonl"
    server = DaphneServer(recording, **WIRE_ENV)
    try:
        async with connect(server.url(endpoint)) as ws:
            await ws.send("/sleep 2")
            connection = server.connection_of(ws.local_address[1])
            server.wait_for(rf"{connection}\s+→ in\s+websocket.receive")
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)
        assert await asyncio.to_thread(server.process.wait, 30) == 0
    finally:
        server.stop()
    records = read_records(recording, connection)
    assert records[-1]["kind"] == "exit"
    [slept] = [r for r in records if r["kind"] == "done" and r["event"]["type"] == "websocket.receive"]
    notes = [note for r in records for note in r.get("notes", ())]
    assert not any("after the consumer ended" in note for note in notes)
    # The close was the server's own, not the client's: no note says the client started it.
    assert not any("the client's close" in note for note in notes), notes
    if endpoint == "sc":  # it ran to its end, its reply traced (to a client already gone), then the exit
        assert "outcome" not in slept
        assert any(r["kind"] == "out" and r["event"].get("text") == "slept 2 s" for r in records)
        # Then it was told of the close and stopped by itself: not a StopConsumer and a cancel both.
        [told] = [r for r in records if r["kind"] == "done" and r["event"]["type"] == "websocket.disconnect"]
        assert "outcome" not in told and not records[-1]["note"].startswith("consumer cancelled")
        assert any("is stopping: it closed this connection with 1001" in note for note in notes), notes
    else:
        assert slept["outcome"] == "cancelled"
        assert records[-1]["note"].startswith("consumer cancelled")


class RunserverProcess(TracedServer):
    """``manage.py runserver`` (daphne's), on a free port, as ``make run`` starts it."""

    def __init__(self, recording):
        self.kind = SERVERS["daphne"]
        self.log = None
        self.lines = []
        self.recording = recording
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],  # as make run
            start_new_session=True,  # a process group of its own, to signal as a terminal would
            cwd=ROOT,
            env={**os.environ, "EXPLORER_TRACE_FILE": str(recording), "PYTHONUNBUFFERED": "1", **WIRE_ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="backslashreplace",
        )
        self.output = self.process.stdout  # what RunningServer.read reads
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        self.wait_for(r"Quit the server with CONTROL-C", timeout=30)
        # runserver says so just before it listens: wait until it does.
        assert wait_until(self.listening, timeout=30), "\n".join(self.lines[-20:])

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True


LOAD_CONNECTIONS = 2000
LOAD_TRIPS = 50


async def stats(server):
    async with connect(server.url("ac")) as ws:
        await ws.send("/stats")
        return json.loads(await ws.recv())


async def wave(server, connections, trips):
    """``connections`` clients split across both endpoints, each sending ``trips`` numbered messages.

    All connect first, then all talk: a handshake waiting behind thousands of
    sync handlers on the one sync thread would run into daphne's 5 s
    handshake timeout (the cross-stall again), which is not what this measures.
    """
    limit = asyncio.Semaphore(100)  # handshakes in flight

    async def opened(n):
        async with limit:
            return await connect(server.url("sc" if n % 2 else "ac"), open_timeout=60)

    clients = await asyncio.wait_for(asyncio.gather(*(opened(n) for n in range(connections))), 300)

    async def talk(n, ws):
        for trip in range(trips):
            await ws.send(f"{n}:{trip}")
            assert await ws.recv() == f"{n}:{trip}"  # every message answered, in order

    try:
        await asyncio.wait_for(asyncio.gather(*(talk(n, ws) for n, ws in enumerate(clients))), 900)
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


@pytest.mark.heavy
async def test_load_every_message_answered_in_order_and_resources_come_back(tmp_path):
    recording = tmp_path / "trace.jsonl"
    daphne = DaphneServer(recording, **WIRE_ENV)  # compact trace, to a pipe and a file
    try:
        before = await stats(daphne)
        await wave(daphne, LOAD_CONNECTIONS, LOAD_TRIPS)
        await asyncio.sleep(2)  # daphne reaps finished applications once a second
        after = await stats(daphne)
        await wave(daphne, LOAD_CONNECTIONS, 5)  # the same again, briefly: does anything keep growing?
        await asyncio.sleep(2)
        again = await stats(daphne)
    finally:
        daphne.stop()
    for figures in (after, again):
        assert figures["asyncio_tasks"] <= before["asyncio_tasks"] + 2
        assert figures["threads"] <= before["threads"] + 1
        assert figures["open_files"] <= before["open_files"] + 2
    print("load figures:", json.dumps({"before": before, "after": after, "again": again}))
    assert again["rss_kib"] <= after["rss_kib"] * 1.1  # memory is reused, not leaked
    records = read_records(recording)
    received = sum(1 for r in records if r["kind"] == "in" and r["event"]["type"] == "websocket.receive")
    dropped_notice = any("dropped" in r for r in records)
    expected = LOAD_CONNECTIONS * (LOAD_TRIPS + 5) + 3  # and one /stats each time
    assert received == expected or dropped_notice  # a full queue may drop records, and says so
