"""Fixtures shared by the tests: the endpoints, a trace capture, and a real daphne server."""

import asyncio
import contextlib
import datetime
import io
import itertools
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections
from rich.console import Console

from explorer.serving import SERVERS, RunningServer, free_port, migrated_sqlite
from explorer.trace.handlers import QueuedTraceHandler
from explorer.trace.recording import written_so_far
from tests.postgres import PostgresServer, postgres_binaries

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ["sc", "ac"]

# "   0.012s sc#1   → in    websocket.receive    [MainThread] {'text': 'hi'}"
TRACE_LINE = re.compile(
    r"^\s*(?P<seconds>\d+\.\d{3})s (?P<connection>[a-z]+#\d+)\s+(?P<arrow>\S) (?P<kind>\w+)\s*(?P<rest>.*)$"
)


@pytest.fixture(params=ENDPOINTS)
def endpoint(request):
    return request.param


def parse(lines, connection=None):
    """Trace lines as match objects, optionally for one connection."""
    parsed = [m for m in map(TRACE_LINE.match, lines) if m]
    return [m for m in parsed if connection is None or m["connection"] == connection]


def read_records(path, connection=None):
    """The JSON Lines recording at ``path``, optionally for one connection."""
    records = written_so_far(path)
    # A run's header (kind "run") is not a connection's: tests read the entries.
    records = [r for r in records if "connection" in r]
    return [r for r in records if connection is None or r.get("connection") == connection]


def rules_broken(records):
    """The rule ids of every violation in these records, in order."""
    return [violation["rule"] for record in records for violation in record.get("violations", ())]


def notes_of(records):
    return [note for record in records for note in record.get("notes", ())]


# Notes a busy machine adds: an event that waited for its handler, one that arrived as a handler let go
# of the event loop, a handler step that held the loop (a garbage collection, a preempted process). A
# test of anything else leaves them out.
TIMING_NOTES = ("waited ", "arrived as ", "held the event loop")


def untimed(notes):
    """``notes`` without those a busy machine adds (``TIMING_NOTES``)."""
    return [note for note in notes if not note.startswith(TIMING_NOTES)]


class TraceCapture:
    """The trace as rendered, through the real queue and listener, into a string and a recording."""

    def __init__(self, recording):
        self.buffer = io.StringIO()
        self.recording = recording
        console = Console(file=self.buffer, width=200, color_system=None, markup=False, emoji=False)
        self.handler = QueuedTraceHandler(queue_size=10_000, console=console, file=recording)

    def records(self, connection=None):
        return read_records(self.flushed(), connection)

    def flushed(self):
        """The recording's path, once every queued record is in it."""
        self.handler.flush()
        return self.recording

    def text(self):
        self.handler.flush()
        return self.buffer.getvalue()

    def lines(self):
        return self.text().splitlines()

    def parsed(self, connection=None):
        return parse(self.lines(), connection)

    async def handler_started(self, text, timeout=10):
        """The ``in`` record of the message ``text``, once a consumer's handler has started for it (the record
        is made as it starts; a plain ASGI application's, as it receives it): a test that needs a handler
        running waits for that, not for a guessed time."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if r["kind"] == "in" and r["event"].get("text") == text]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no handler started for {text!r} in {timeout} s"
            await asyncio.sleep(0.01)


def moment(record):
    """When a record's ``seconds`` was, on the wall clock (its ``at``): comparable across connections."""
    return datetime.datetime.fromisoformat(record["at"]).timestamp()


# Two connections' moments differ by as much as each one's anchor on the wall clock (read just after its
# own clock as it opens: a busy machine can come between the two reads).
CLOCKS = 0.05
# An event sent from a test arrives on the same event loop: at its next turn, unless the process pauses.
ARRIVED = 0.1


@pytest.fixture
def trace(tmp_path):
    capture = TraceCapture(tmp_path / "trace.jsonl")
    logger = logging.getLogger("explorer.trace")
    logger.addHandler(capture.handler)
    yield capture
    logger.removeHandler(capture.handler)
    capture.handler.close()


@pytest.fixture(scope="session", autouse=True)
def servers_database(tmp_path_factory):
    """A migrated SQLite file for every server and command the tests start, as DATABASE_URL in their
    environment: /say keeps messages there and /history reads them, and a fresh clone has no database.
    (This process's own settings are read already: its tests use ``database``.)"""
    url = migrated_sqlite(tmp_path_factory.mktemp("database") / "db.sqlite3")
    before = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    yield url
    if before is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = before


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """The in-process tests' database in a file, not in memory: Django ignores close() on an in-memory
    SQLite connection, and ``database`` must really close the one channels' sync thread opened."""
    from django.conf import settings

    test = settings.DATABASES["default"].setdefault("TEST", {})
    test["NAME"] = str(tmp_path_factory.mktemp("test-db") / "test.sqlite3")


@pytest.fixture
def database(transactional_db):
    """The test database, for consumers that keep messages (``/say``) or read them (``/history``).

    Transactional, since the queries run on channels' sync thread, not in the test's transaction.
    Afterwards that thread's connection is closed: else the next test's consumer, which
    pytest-django allows no database, would fail in close_old_connections()'s look at it.
    """
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


class TracedServer(RunningServer):
    """A real server process (``explorer.serving``) serving a traced app, with what the tests ask of it."""

    def __init__(self, kind, recording, application="explorer.asgi:application", cwd=ROOT, **env):
        self.recording = recording
        self.tags = itertools.count(1)
        super().__init__(kind, application, cwd=cwd, env={"EXPLORER_TRACE_FILE": str(recording), **env})

    def url(self, endpoint, query=""):
        return f"ws://127.0.0.1:{self.port}/ws/{endpoint}/" + (f"?{query}" if query else "")

    def connection_of(self, client_port):
        """The trace's id (sc#N) for the connection from this client port."""
        line = self.wait_for(rf"● scope .*'client': [\[(]'127\.0\.0\.1', '?{client_port}'?[\])]")
        return TRACE_LINE.match(line)["connection"]

    def trace_of(self, connection, until_kind="exit", timeout=10):
        """This connection's parsed trace lines, once its ``until_kind`` line is out."""
        self.wait_for(rf"\s{re.escape(connection)}\s+\S {until_kind}\b", timeout=timeout)
        return parse(self.lines, connection)

    def url_with_tag(self, endpoint, query=""):
        """A URL with a unique ``tag=`` in its query, and the tag, to find its trace by."""
        tag = f"t{next(self.tags)}"
        return self.url(endpoint, f"{query}&tag={tag}" if query else f"tag={tag}"), tag

    def connection_tagged(self, tag, timeout=10):
        """The connection id whose scope's query string carries ``tag=TAG``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in read_records(self.recording):
                query = (record.get("event") or {}).get("query_string", {})
                if record["kind"] == "scope" and f"tag={tag}" in str(query):
                    return record["connection"]
            time.sleep(0.02)
        raise TimeoutError(f"no scope tagged {tag}")

    def records_of(self, connection, timeout=10):
        """This connection's recorded trace, once its consumer has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = read_records(self.recording, connection)
            if records and records[-1]["kind"] in ("exit", "error"):
                return records
            time.sleep(0.02)
        raise TimeoutError(f"{connection} has not exited; last lines:\n" + "\n".join(self.lines[-40:]))


def DaphneServer(recording, application="explorer.asgi:application", cwd=ROOT, **env):  # noqa: N802
    return TracedServer("daphne", recording, application, cwd, **env)


# A shared server serves many tests one after the other: its budget for holding
# the sync thread is raised (the hostile tests start servers of their own).
WIRE_ENV = {
    "EXPLORER_TRACE": "compact",
    "EXPLORER_TRACE_MAX_PAYLOAD": "64",
    "COLUMNS": "200",
    "EXPLORER_HOLD_SHARE": "60",
}


@pytest.fixture(autouse=True)
def budgets_of_their_own():
    """In-process tests share the process-wide hold budget and the trace's ledgers of who held the
    threads: each test starts with them empty, so one test's /block is not another's blame."""
    from consumers.limits import HOLDS
    from explorer.trace.timing import ledger, loop_ledger

    HOLDS.spans.clear()
    ledger.holds.clear()
    loop_ledger.holds.clear()


def trace_as_served():
    """pytest attaches its log capture to every logger that does not propagate, the trace's too, and with
    handlers besides its own the trace goes through ``logging`` (``connection.deliver``): in-process tests
    would never take the path a server takes. The trace's logger keeps only its own handlers."""
    trace = logging.getLogger("explorer.trace")
    for handler in [handler for handler in trace.handlers if type(handler).__module__ == "_pytest.logging"]:
        trace.removeHandler(handler)


# Inside pytest's own wrappers of each phase, which attach the capture as they begin.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item):
    trace_as_served()
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item):
    trace_as_served()
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item):
    trace_as_served()
    return (yield)


@contextlib.contextmanager
def daphne_serving(tmp_path_factory, application="explorer.asgi:application", kind="daphne"):
    """A server for a fixture, recording its trace in a fresh directory, stopped at the end."""
    name = application.partition(":")[0].rpartition(".")[2]
    recording = tmp_path_factory.mktemp(f"{kind}-{name}") / "trace.jsonl"
    server = TracedServer(kind, recording, application=application, **WIRE_ENV)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """``served(kind, application)``: that server serving that app, started once for the session."""
    running = {}
    with contextlib.ExitStack() as stack:

        def serve(kind, application="explorer.asgi:application"):
            if not SERVERS[kind].installed:
                pytest.fail(f"{SERVERS[kind].distribution} is not installed (requirements.txt pins it)")
            if (kind, application) not in running:
                running[kind, application] = stack.enter_context(
                    daphne_serving(tmp_path_factory, application, kind)
                )
            return running[kind, application]

        yield serve


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with daphne_serving(tmp_path_factory) as daphne:
        yield daphne


@pytest.fixture(scope="session")
def rule_breaker_server(tmp_path_factory):
    """daphne serving the test-only consumers that break the rules on purpose."""
    with daphne_serving(tmp_path_factory, "tests.rule_breakers:application") as daphne:
        yield daphne


class RedisServer:
    """A real redis-server on a free loopback port, with nothing saved to disk."""

    def __init__(self, directory, port=None):
        self.port = port or free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.answers_ping():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def answers_ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing; .ci/run installs it (apt-get install redis-server)")
        pytest.skip("redis-server is not installed here (Debian: apt-get install redis-server)")
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    yield redis
    redis.stop()


def require_postgres():
    """Debian's postgresql server binaries: skipped here without them, a failure in CI."""
    binaries = postgres_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("postgres is missing; .ci/run installs it (apt-get install postgresql)")
        pytest.skip("postgres is not installed here (Debian: apt-get install postgresql)")
    return binaries


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session; its ``url`` is a fresh database's, for DATABASE_URL."""
    postgres = PostgresServer(require_postgres())
    yield postgres
    postgres.stop()
