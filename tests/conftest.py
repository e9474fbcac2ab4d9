"""Fixtures shared by the tests: the endpoints, a trace capture, and a real daphne server."""

import io
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from explorer.trace.handlers import QueuedTraceHandler

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


class TraceCapture:
    """The trace as rendered, through the real queue and listener, into a string."""

    def __init__(self):
        self.buffer = io.StringIO()
        console = Console(file=self.buffer, width=200, color_system=None, markup=False, emoji=False)
        self.handler = QueuedTraceHandler(queue_size=10_000, console=console)

    def text(self):
        self.handler.flush()
        return self.buffer.getvalue()

    def lines(self):
        return self.text().splitlines()

    def parsed(self, connection=None):
        return parse(self.lines(), connection)


@pytest.fixture
def trace():
    capture = TraceCapture()
    logger = logging.getLogger("explorer.trace")
    logger.addHandler(capture.handler)
    yield capture
    logger.removeHandler(capture.handler)
    capture.handler.close()


class DaphneServer:
    """A real daphne process serving the explorer on a free loopback port."""

    def __init__(self, **env):
        self.lines = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "explorer.asgi:application"],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings", "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="backslashreplace",
        )
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        listening = self.wait_for(r"Listening on TCP address 127\.0\.0\.1:(\d+)", timeout=30)
        self.port = int(re.search(r"127\.0\.0\.1:(\d+)", listening).group(1))

    def read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def url(self, endpoint, query=""):
        return f"ws://127.0.0.1:{self.port}/ws/{endpoint}/" + (f"?{query}" if query else "")

    def wait_for(self, pattern, timeout=10, start=0):
        """The first output line from ``start`` on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if re.search(pattern, line):
                    return line
            if self.process.poll() is not None:
                raise RuntimeError("daphne exited:\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.02)
        raise TimeoutError(f"no line matching {pattern!r}; last lines:\n" + "\n".join(self.lines[-40:]))

    def connection_of(self, client_port):
        """The trace's id (sc#N) for the connection from this client port."""
        line = self.wait_for(rf"● scope .*'client': \['127\.0\.0\.1', {client_port}\]")
        return TRACE_LINE.match(line)["connection"]

    def trace_of(self, connection, until_kind="exit", timeout=10):
        """This connection's parsed trace lines, once its ``until_kind`` line is out."""
        self.wait_for(rf"\s{re.escape(connection)}\s+\S {until_kind}\b", timeout=timeout)
        return parse(self.lines, connection)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)


@pytest.fixture(scope="session")
def server():
    daphne = DaphneServer(EXPLORER_TRACE="compact", EXPLORER_TRACE_MAX_PAYLOAD="64", COLUMNS="200")
    yield daphne
    daphne.stop()
