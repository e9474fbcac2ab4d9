"""The bench's scenarios, run from a websockets client against a daphne serving ``explorer.bench.app``.

Each scenario is bounded in connections, messages and time, and talks only
to the loopback address. Figures are plain dicts, ready for a table or JSON.
The server's CPU time, memory, threads and open files are read from
``/proc/PID`` when the bench knows the server's PID (it does when it
started the server).
"""

import asyncio
import contextlib
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import connect

from explorer.serving import RunningServer, migrated_sqlite
from explorer.trace import panel

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Handshakes in flight at once: under the smallest listen backlog of the servers (daphne's, Twisted's
# default of 50). Past it the kernel drops the handshake's SYN (or final ACK), and it is sent again
# about a second later.
CONNECT_BATCH = 40
TIMEOUT = 60  # seconds any one step may take before the bench gives up on it
# What the trace's console says as it stops (explorer.trace.handlers), read from the server's log.
FIGURES = r"p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms"
PAUSES = r"([\d,]+) full garbage collections? paused the process: longest ([\d.]+) ms, ([\d.]+) ms in all"
SCREEN_LATENCY = (
    rf"([\d,]+) records shown; from line made to screen: {FIGURES}; from event to screen: {FIGURES}"
)


@dataclass
class BenchServer:
    """The server under test: its URL, and its PID when this process can read /proc for it."""

    base: str
    given_pid: int | None = None  # with --url: the PID the user named
    running: RunningServer | None = None
    log: Path | None = None
    label: str = "the server at --url"

    @property
    def pid(self):
        # Asked each time: hypercorn and granian start the worker that serves after they listen.
        return self.running.pid if self.running else self.given_pid

    def url(self, subject):
        return f"{self.base}/bench/{subject}/"

    def proc(self, name):
        return Path(f"/proc/{self.pid}/{name}") if self.pid else None

    def cpu_seconds(self):
        return cpu_seconds(self.pid) if self.pid else None

    def renderer_cpu_seconds(self):
        """The trace's renderer process's CPU (started as the server builds its application): the trace's
        cost that is not the server's own."""
        if not self.running:
            return None
        pid = self.running.renderer_pid
        return cpu_seconds(pid) if pid else 0.0

    def status(self, key):
        if not self.pid:
            return None
        match = re.search(rf"^{key}:\s+(\d+)", self.proc("status").read_text(), re.MULTILINE)
        return int(match.group(1)) if match else None

    def state(self):
        """Its memory (bytes), threads and open files now."""
        kilobytes = self.status("VmRSS")
        return {
            "rss": kilobytes * 1024 if kilobytes is not None else None,
            "threads": self.status("Threads"),
            "open_files": len(os.listdir(self.proc("fd"))) if self.pid else None,
        }

    def dropped_records(self):
        """Trace records the server's queue dropped, from its log."""
        if not self.log:
            return None
        text = self.log.read_text(errors="replace")
        return sum(int(n.replace(",", "")) for n in re.findall(r"([\d,]+) records dropped", text))

    def screen_latency(self):
        """How long lines took to reach the console, as the trace's console sink said when it stopped:
        from when the trace made each (``p50_ms``...: the console's lag), and from its event
        (``event_p50_ms``...: with the time an event waited for its handler too)."""
        if not self.log or not self.log.exists():
            return None
        found = re.findall(SCREEN_LATENCY, self.log.read_text(errors="replace"))
        if not found:
            return None
        records, *figures = found[-1]
        names = [f"{start}{name}_ms" for start in ("", "event_") for name in ("p50", "p99", "max")]
        return {
            "records": int(records.replace(",", "")),
            **dict(zip(names, map(float, figures), strict=True)),
        }

    def pauses(self):
        """The server process's full garbage collections, as the trace said when it stopped: how many,
        the longest and all of them (ms); None when it did not say (the renderer process says the
        console's figures, so they tell nothing of whether the server's process ran its trace's end)."""
        if not self.log or not self.log.exists():
            return None
        found = re.findall(PAUSES, self.log.read_text(errors="replace"))
        if not found:
            return None
        count, longest, total = found[-1]
        return {"count": int(count.replace(",", "")), "longest_ms": float(longest), "total_ms": float(total)}

    def stop(self):
        if self.running:
            self.running.stop()


def cpu_seconds(pid):
    # Fields 14 and 15 of /proc/PID/stat: user and system time, in clock ticks.
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def listen_overflows():
    """How many connections this machine's listen queues have dropped (TcpExt ListenOverflows), or None."""
    try:
        names, values = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()[:2]]
    except (OSError, ValueError):
        return None
    counters = dict(zip(names, values, strict=False))
    return int(counters["ListenOverflows"]) if "ListenOverflows" in counters else None


def start_server(log, kind="daphne", environment=None, terminal=False):
    """``kind`` serving the bench's subjects on a free loopback port; its trace console goes to ``log``,
    through a pseudo-terminal when ``terminal``."""
    # The concurrency scenario holds the sync thread for 5 s on purpose: lift the hold budget.
    env = {
        "EXPLORER_HOLD_SHARE": "60",
        "DATABASE_URL": migrated_sqlite(Path(log).parent / "bench.sqlite3"),
        **(environment or {}),
    }
    running = RunningServer(kind, app="explorer.bench.app:application", env=env, log=log, terminal=terminal)
    return BenchServer(f"ws://127.0.0.1:{running.port}", None, running, Path(log), running.kind.label)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def open_connections(url, count):
    """``count`` connections to ``url``, at most CONNECT_BATCH handshakes at a time."""
    limit = asyncio.Semaphore(CONNECT_BATCH)

    async def one():
        async with limit:
            return await connect(url, compression=None, open_timeout=TIMEOUT, max_size=None)

    return await asyncio.gather(*(one() for _ in range(count)))


async def round_trip(ws, text="hello"):
    """Send ``text`` and wait for the reply: how long it took, in seconds."""
    sent = time.perf_counter()
    await ws.send(text)
    await ws.recv()
    return time.perf_counter() - sent


async def close_all(connections):
    await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)


async def echo(server, subject, connections, trips, on_progress=lambda n: None, interval=None):
    """``connections`` clients, each sending ``trips`` small messages one at a time, awaiting each echo;
    ``interval`` seconds apart at the most, when given (the clients' starts spread over one)."""
    clients = await open_connections(server.url(subject), connections)
    latencies = []

    async def client(ws, offset):
        start = time.perf_counter() + offset
        for trip in range(trips):
            delay = start + trip * interval - time.perf_counter() if interval else 0
            if delay > 0:
                await asyncio.sleep(delay)
            latencies.append(await round_trip(ws))
            on_progress(1)

    cpu, renderer_cpu = server.cpu_seconds(), server.renderer_cpu_seconds()
    client_cpu = time.process_time()
    started = time.perf_counter()
    offsets = (n * (interval or 0) / connections for n in range(connections))
    await asyncio.wait_for(asyncio.gather(*map(client, clients, offsets)), TIMEOUT)
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    cpu = server.cpu_seconds() - cpu if cpu is not None else None
    renderer_cpu = server.renderer_cpu_seconds() - renderer_cpu if renderer_cpu is not None else None
    await close_all(clients)
    messages = connections * trips
    return {
        "subject": subject,
        "messages": messages,
        "seconds": elapsed,
        "rate": messages / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "cpu_us_per_message": cpu / messages * 1e6 if cpu is not None else None,
        "renderer_cpu_us_per_message": renderer_cpu / messages * 1e6 if renderer_cpu is not None else None,
        # The bench's own share of a core: near 1, the client, not the server, sets the pace.
        "client_cpu_share": client_cpu / elapsed,
    }


async def paced_echo(server, subject, connections, rate, seconds):
    """The echo at an offered ``rate`` (messages a second, over all ``connections``) for ``seconds``.

    At full speed a server's CPU per message depends on its load: a busy
    event loop reads several messages per wakeup, an idler one one. So the
    trace, by lowering the throughput, raises what the server's own work
    costs per message, and two subjects echoed flat out are compared at two
    loads. Paced below what either can do, both are compared at one.
    """
    trips = max(1, round(rate * seconds / connections))
    row = await echo(server, subject, connections, trips, interval=connections / rate)
    return {**row, "offered_rate": rate}


async def echo_beside_a_stalled_page(server, subject, connections, trips, on_progress=lambda n: None):
    """The echo while a page watches the trace panel and never acknowledges what it is sent: the
    panel holds that page to its window and buffer, and the consumers should not notice."""
    async with connect(f"{server.base}{panel.PATH}", compression=None, open_timeout=TIMEOUT) as page:
        await asyncio.wait_for(page.recv(), TIMEOUT)  # the panel's hello: the page is watching
        row = await echo(server, subject, connections, trips, on_progress)
        batches = 0  # what the panel sent the page: held to its window, however much the echo made
        with contextlib.suppress(TimeoutError):
            while True:
                await asyncio.wait_for(page.recv(), 0.5)
                batches += 1
    return {**row, "subject": f"{subject} beside a stalled page", "page_batches": batches}


async def handshakes(server, subject, count):
    """``count`` handshakes to ``subject``, CONNECT_BATCH in flight: how many per second, then all closed."""
    overflows, started = listen_overflows(), time.perf_counter()
    clients = await asyncio.wait_for(open_connections(server.url(subject), count), TIMEOUT)
    elapsed = time.perf_counter() - started
    overflows = overflows_since(overflows)
    await close_all(clients)
    return {
        "subject": subject,
        "connections": count,
        "handshakes_per_s": count / elapsed,
        "listen_overflows": overflows,
    }


def overflows_since(before):
    after = listen_overflows()
    return after - before if before is not None and after is not None else None


async def sleepers(server, subject, connections, seconds=0.5):
    """Every connection sends ``/sleep`` at once: how long until all have answered."""
    clients = await open_connections(server.url(subject), connections)
    started = time.perf_counter()

    async def client(ws):
        await ws.send(f"/sleep {seconds}")
        await ws.recv()

    await asyncio.wait_for(asyncio.gather(*(client(ws) for ws in clients)), TIMEOUT)
    elapsed = time.perf_counter() - started
    await close_all(clients)
    return {"subject": subject, "connections": connections, "sleep": seconds, "all_answered_s": elapsed}


async def cross_stall(
    server, blocker="explorer-sc-off", timed=("explorer-ac-off", "raw", "bare-ac"), block=1.0
):
    """``/block`` on a sync consumer, then one echo on each of ``timed``: how long each took."""
    [blocking] = await open_connections(server.url(blocker), 1)
    others = {subject: (await open_connections(server.url(subject), 1))[0] for subject in timed}
    await blocking.send(f"/block {block}")
    await asyncio.sleep(0.1)  # the sync handler holds its thread now

    results = await asyncio.wait_for(asyncio.gather(*(round_trip(ws) for ws in others.values())), TIMEOUT)
    await blocking.recv()
    await close_all([blocking, *others.values()])
    return {"blocker": blocker, "block_s": block, "echo_s": dict(zip(others, results, strict=True))}


async def query_stall(server, subjects=("explorer-ac-off", "explorer-sc-off"), clients=4, seconds=3.0):
    """Clients of each of ``subjects`` take turns to echo and to ask ``/history``, for ``seconds`` alone,
    then as long again while one client of ``QUERIER`` runs ``/query 0.5`` as often as its budget
    allows (it rests as long as it held: about half the time): their latency both ways. Every query
    holds the one sync thread, whoever asks: so every echo waits too."""
    return {
        "querier": QUERIER,
        "query_s": QUERY_SECONDS,
        "seconds": seconds,
        "alone": await latency_phase(server, subjects, clients, seconds, querying=False),
        "beside queries": await latency_phase(server, subjects, clients, seconds, querying=True),
    }


async def latency_phase(server, subjects, clients, seconds, querying):
    """One half of ``query_stall``: each operation's latency per subject, and how many queries ran."""
    latencies = {subject: {"echo": [], "history": []} for subject in subjects}
    connections = {subject: await open_connections(server.url(subject), clients) for subject in subjects}
    [querier] = await open_connections(server.url(QUERIER), 1)
    deadline = time.perf_counter() + seconds
    queries = 0

    async def client(ws, subject):
        while time.perf_counter() < deadline:
            for operation, text in (("echo", "x"), ("history", "/history bench")):
                latencies[subject][operation].append(await round_trip(ws, text))

    async def query_loop():
        nonlocal queries
        while time.perf_counter() < deadline:
            await querier.send(f"/query {QUERY_SECONDS}")
            if (await querier.recv()).startswith("error:"):  # its rest between two holds (limits.py)
                await asyncio.sleep(0.05)
            else:
                queries += 1

    workers = [client(ws, subject) for subject, opened in connections.items() for ws in opened]
    await asyncio.wait_for(asyncio.gather(*workers, *([query_loop()] if querying else [])), TIMEOUT)
    await close_all([querier, *(ws for opened in connections.values() for ws in opened)])
    figures = {
        subject: {
            operation: {
                "count": len(values),
                "p50_ms": percentile(values, 0.5) * 1000,
                "p99_ms": percentile(values, 0.99) * 1000,
                "max_ms": max(values) * 1000,
                "over_100ms": sum(value >= 0.1 for value in values),  # what a stall looks like: a few, long
            }
            for operation, values in by_operation.items()
        }
        for subject, by_operation in latencies.items()
    }
    return {"queries": queries, **figures}


QUERIER = "explorer-sc-off"  # the sync client whose /query holds the sync thread in query_stall
QUERY_SECONDS = 0.5


async def scale(
    server, total, subjects=("explorer-ac-compact", "explorer-sc-compact"), on_progress=lambda n: None
):
    """``total`` connections across ``subjects``: handshakes, memory, a message each, then all closed."""
    before = server.state()
    share = [total // len(subjects) + (i < total % len(subjects)) for i in range(len(subjects))]
    overflows, started = listen_overflows(), time.perf_counter()
    opened = []
    for subject, count in zip(subjects, share, strict=True):
        for batch in range(0, count, CONNECT_BATCH):
            opened += await open_connections(server.url(subject), min(CONNECT_BATCH, count - batch))
            on_progress(min(CONNECT_BATCH, count - batch))
    handshake_s = time.perf_counter() - started
    overflows = overflows_since(overflows)
    await asyncio.sleep(0.5)  # let the server settle before reading its memory
    open_state = server.state()

    async def one_message(ws):
        await ws.send("x")
        return await ws.recv()

    started = time.perf_counter()
    replies = await asyncio.wait_for(asyncio.gather(*(one_message(ws) for ws in opened)), TIMEOUT)
    round_s = time.perf_counter() - started
    await close_all(opened)
    await asyncio.sleep(2)  # daphne reaps finished applications once a second
    after = server.state()
    rss_per = (open_state["rss"] - before["rss"]) / total if before["rss"] is not None else None
    return {
        "connections": total,
        "subjects": list(subjects),
        "handshakes_per_s": total / handshake_s,
        "listen_overflows": overflows,
        "rss_per_connection_kb": rss_per / 1024 if rss_per is not None else None,
        "round_s": round_s,
        "answered": sum(reply == "x" for reply in replies),
        "before": before,
        "open": open_state,
        "after": after,
    }


ECHO_FIGURES = (
    "rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cpu_us_per_message",
    "renderer_cpu_us_per_message",
    "client_cpu_share",
    "page_batches",  # beside a stalled page only
)


PACED_FIGURES = ("offered_rate", *ECHO_FIGURES[:-1])  # an echo's, but for the page's batches
COUNTS = ("messages", "listen_overflows")  # added up over the rounds, not a median


def median_rows(rows, figures=ECHO_FIGURES):
    """One row per subject from several rounds: the median of each figure, the sum of each count."""
    merged = {}
    for row in rows:
        merged.setdefault(row["subject"], []).append(row)
    result = []
    for subject, runs in merged.items():
        row = {"subject": subject, "rounds": len(runs)}
        for key in (*figures, *(count for count in COUNTS if count in runs[0])):
            values = [r[key] for r in runs if r.get(key) is not None]
            if key in COUNTS:  # a round that could not count leaves the total unknown
                row[key] = sum(values) if len(values) == len(runs) else None
            else:
                row[key] = statistics.median(values) if values else None
        result.append(row)
    return result


@contextlib.contextmanager
def raised_file_limit():
    """Use the hard open-file limit: the scale scenario holds thousands of sockets, in both processes."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
