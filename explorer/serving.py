"""Start an ASGI server on a free loopback port, and stop it: daphne, uvicorn, hypercorn and granian.

One home for the command line of each server the explorer knows, used by
``manage.py servers``, ``manage.py bench`` and the wire tests. Every server
is started by ``python -m NAME`` with this interpreter, bound to 127.0.0.1
only, its output (the trace's console among it) kept line by line, and
stopped by its PID.
"""

import contextlib
import datetime
import fcntl
import os
import platform
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30  # seconds a server may take to listen
TERMINAL_SIZE = (50, 120)  # rows and columns of a server's pseudo-terminal, when it has one


def version_of(distribution):
    """The installed version of ``distribution``, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class ServerKind:
    """One server, run one way: its name here, the package it comes from, and its command line."""

    name: str
    distribution: str
    arguments: str  # after "python -m", split at spaces; {app}, {host} and {port} are filled in
    implementation: str | None = None  # uvicorn's WebSocket implementation

    def command(self, app, port):
        return [sys.executable, "-m", *self.arguments.format(app=app, host=HOST, port=port).split()]

    @property
    def version(self):
        return version_of(self.distribution)

    @property
    def installed(self):
        return self.version is not None

    @property
    def label(self):
        impl = f" ({self.implementation})" if self.implementation else ""
        return f"{self.distribution} {self.version or '(not installed)'}{impl}"


def uvicorn(implementation):
    # --lifespan off: the explorer's ProtocolTypeRouter has no lifespan app.
    return f"uvicorn --host {{host}} --port {{port}} --ws {implementation} --lifespan off {{app}}"


SERVERS = {
    kind.name: kind
    for kind in (
        ServerKind("daphne", "daphne", "daphne -b {host} -p {port} {app}"),
        ServerKind("uvicorn", "uvicorn", uvicorn("websockets-sansio"), "websockets-sansio"),
        ServerKind("uvicorn-wsproto", "uvicorn", uvicorn("wsproto"), "wsproto"),
        ServerKind("uvicorn-websockets", "uvicorn", uvicorn("websockets"), "websockets"),
        ServerKind("hypercorn", "hypercorn", "hypercorn --bind {host}:{port} {app}"),
        # asginl: ASGI without lifespan, for the same reason as uvicorn's --lifespan off.
        ServerKind("granian", "granian", "granian --interface asginl --host {host} --port {port} {app}"),
    )
}
# The servers `manage.py servers` compares by default: one column each.
MAIN = ("daphne", "uvicorn", "hypercorn", "granian")


def machine():
    """Where figures were measured: the date, platform, Python, CPUs, memory, and the stack's versions."""
    meminfo = Path("/proc/meminfo")
    lines = meminfo.read_text().splitlines() if meminfo.exists() else []
    total = next((line.split()[1] for line in lines if line.startswith("MemTotal")), None)
    packages = ("django", "channels", "daphne", "uvicorn", "hypercorn", "granian", "rich", "websockets")
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(total) / 1024**2, 1) if total else None,
        "versions": {name: version_of(name) for name in packages},
    }


RENDERER = b"explorer.trace.renderer"  # the trace's renderer process, in its command line


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children(pid):
    """Process ``pid``'s children, whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return sorted(found)


def gone(pid, timeout):
    """Whether process ``pid`` (not necessarily this one's child) has ended within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def migrated_sqlite(path):
    """A fresh SQLite database at ``path``, migrated, as a DATABASE_URL for the servers started here:
    /say, /history and /query need its table, and a fresh clone has no database."""
    url = f"sqlite:///{path}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
    )
    return url


def free_port():
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def listening(port):
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


class RunningServer:
    """A server process serving ``app`` on a free loopback port, its output gathered as lines.

    ``terminal``: its output goes to a pseudo-terminal of ``TERMINAL_SIZE``, as
    when a developer runs it, so the trace writes what a terminal gets
    (escape codes, lines fitted to its width), not a file's plain lines.
    """

    def __init__(self, kind, app="explorer.asgi:application", cwd=ROOT, env=None, log=None, terminal=False):
        self.kind = SERVERS[kind] if isinstance(kind, str) else kind
        self.lines = []
        self.log = log
        self.terminal = terminal
        for _attempt in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            environment = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "explorer.settings",
                "PYTHONUNBUFFERED": "1",
                # A terminal's size as its programs read it: Rich reads COLUMNS before the terminal.
                **(
                    {
                        "TERM": "xterm-256color",
                        "COLUMNS": str(TERMINAL_SIZE[1]),
                        "LINES": str(TERMINAL_SIZE[0]),
                    }
                    if terminal
                    else {}
                ),
                **(env or {}),
            }
            command = self.kind.command(app, self.port)
            if terminal:
                controller, follower = pty.openpty()
                rows, columns = TERMINAL_SIZE
                try:
                    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
                    self.process = subprocess.Popen(
                        command,
                        cwd=cwd,
                        env=environment,
                        stdin=subprocess.DEVNULL,  # not the bench's own terminal, whose size Rich would ask
                        stdout=follower,
                        stderr=follower,
                    )
                except BaseException:
                    os.close(controller)
                    raise
                finally:
                    os.close(follower)  # the server's now: the output ends when it and its children close it
                self.output = open(controller, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
            else:
                self.process = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=environment,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    encoding="utf-8",
                    errors="backslashreplace",
                )
                self.output = self.process.stdout
            self.reader = threading.Thread(target=self.read, daemon=True)
            self.reader.start()
            if self.wait_until_listening():
                return
        raise RuntimeError(f"{self.kind.name} did not start:\n{self.last_lines()}")

    def read(self):
        log = open(self.log, "a", encoding="utf-8") if self.log else open(os.devnull, "w")  # noqa: SIM115
        with log, self.output:
            while True:
                try:
                    line = self.output.readline()
                except OSError:  # a pseudo-terminal's end, once every process holding it has closed it
                    return
                if not line:
                    return
                self.lines.append(line.rstrip("\n"))
                log.write(line)

    def wait_until_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.reader.join(timeout=5)
                return False
            if listening(self.port):
                return True
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.kind.name} did not listen within {START_TIMEOUT} s")

    def last_lines(self):
        return "\n".join(self.lines[-40:])

    def url(self, path):
        return f"ws://{HOST}:{self.port}{path}"

    def http_url(self, path="/"):
        return f"http://{HOST}:{self.port}{path}"

    @property
    def pid(self):
        """The process that runs the application: hypercorn and granian serve from a worker they start."""
        workers = [
            pid
            for pid in children(self.process.pid)
            if not any(helper in command_line(pid) for helper in (b"resource_tracker", RENDERER))
        ]
        return workers[-1] if workers else self.process.pid

    @property
    def renderer_pid(self):
        """The trace's renderer process (``explorer.trace.renderer``), once the application has started it."""
        found = [pid for pid in children(self.pid) if RENDERER in command_line(pid)]
        return found[0] if found else None

    def wait_for(self, pattern, timeout=10, start=0):
        """The first output line from ``start`` on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if re.search(pattern, line):
                    return line
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind.name} exited:\n{self.last_lines()}")
            time.sleep(0.02)
        raise TimeoutError(f"no line matching {pattern!r}; last lines:\n{self.last_lines()}")

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)
