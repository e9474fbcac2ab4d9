"""``python manage.py bench``: each layer's cost, sync against async, and what the trace costs.

Starts one daphne serving every subject (``explorer.bench.app``), runs the
echo, concurrency and scale scenarios against it from a websockets client in
this process (both on this machine, so they share its cores), and prints a
table per scenario. ``--json FILE`` keeps every figure with the machine's
details, so two runs can be compared.
"""

import asyncio
import functools
import itertools
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from explorer.bench import CAPTURE, EXPLORER_MODES, SUBJECT_NAMES, cost, instructions, scenarios
from explorer.serving import SERVERS, machine
from explorer.trace.render import command_console

MAX_SCALE = 9000  # client and server sockets together stay inside 20,000 open files
QUICK = {"connections": 4, "trips": 40, "rounds": 1, "sleepers": 4, "scale": 100, "handshakes": 50}
RECORDS_PER_ECHO = cost.RECORDS_PER_ECHO  # a traced echo: in, out, done (tests/test_bench.py)
COST_SIZES = {"rounds": 10, "echoes": 400, "handshakes": 200}  # --cost: per subject and round, in one process
QUICK_COST_SIZES = {"rounds": 2, "echoes": 50, "handshakes": 20}
INSTRUCTION_ECHOES = (100, 600)  # --instructions: the two runs' echoes, whose difference is counted
QUICK_INSTRUCTION_ECHOES = (20, 120)
# Whose CPU the echo measures: the server's process, and the trace's renderer process beside it.
CPU_FIGURES = (("server", "cpu_us_per_message"), ("renderer", "renderer_cpu_us_per_message"))
CLIENT_BOUND = 0.9  # the bench's own share of a core past which the client sets the pace
# The echo at equal load: each endpoint's trace modes paced at this share of the slowest one's full-speed
# rate (so every one keeps up), for this long each round (a sixth of it with --quick).
EQUAL_LOAD_SHARE = 0.5
EQUAL_LOAD_SECONDS = 3.0
QUERY_STALL_SECONDS = 3.0  # each half of the ORM stall: alone, then beside the queries (half with --quick)
ECHO_COLUMNS = (
    "subject",
    "msg/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "server CPU µs/msg",
    "renderer CPU µs/msg",
    "client CPU",
    "vs raw",
    "vs bare",
    "vs trace off",
)
STALLED_PAGE_SUBJECT = "explorer-ac-compact"  # echoed once more each round, a page watching and stalled
HANDSHAKE_SUBJECTS = (
    "raw",
    "bare-ac",
    "bare-sc",
    "explorer-ac-off",
    "explorer-ac-compact",
    "explorer-sc-off",
    "explorer-sc-compact",
)


@dataclass(frozen=True)
class Target:
    """A goal, as a figure within one run (ratios mostly: the machine is shared and noisy)."""

    name: str
    figure: Callable[[dict], float | None]  # from the server's measured results
    bound: float
    at_most: bool = False  # the figure must stay under the bound, not reach it
    unit: str = "%"
    # The same figure with the capture alone (``CAPTURE``: nothing queued or rendered): as far as any
    # queue and renderer could take it.
    capture_alone: Callable[[dict], float | None] | None = None

    def check(self, measured):
        value = self.figure(measured)
        met = value is not None and (value <= self.bound if self.at_most else value >= self.bound)
        return {
            "target": self.name,
            "value": value,
            "bound": self.bound,
            "at_most": self.at_most,
            "unit": self.unit,
            "met": met,
            "capture_alone": self.capture_alone(measured) if self.capture_alone else None,
            # The same figure from each round alone: how far this machine's noise moves it.
            "rounds": [figure for figure in map(self.figure, each_round(measured)) if figure is not None],
        }


def each_round(measured):
    """Each round's echo, handshakes and echo at equal load on their own, for a figure to be taken from
    one round alone: its subjects ran back to back, so a drift of the machine between rounds does not
    come into it."""
    for echo, handshakes, equal_load in itertools.zip_longest(
        measured.get("echo_rounds", ()),
        measured.get("handshake_rounds", ()),
        measured.get("equal_load_rounds", ()),
        fillvalue=[],
    ):
        yield {"echo": echo, "handshakes": handshakes, "equal_load": equal_load}


def by_subject(rows, key):
    """A table's figure ``key``, by subject."""
    return {row["subject"]: row[key] for row in rows}


def figure_of(measured, subject, key="rate", table="echo"):
    return by_subject(measured[table], key).get(subject)


def ratio_of(numerator, denominator, key="rate", table="echo"):
    return lambda m: ratio(figure_of(m, numerator, key, table), figure_of(m, denominator, key, table))


def per_traced_event(kind, mode, key="cpu_us_per_message", table="echo"):
    """CPU a traced event adds: the echo's CPU per message over trace off's, per record; the
    server's own by default, the renderer process's with ``key="renderer_cpu_us_per_message"``;
    from the echo at full speed by default, at equal load with ``table="equal_load"``."""

    def figure(measured):
        if table not in measured:
            return None
        traced = figure_of(measured, f"explorer-{kind}-{mode}", key, table)
        off = figure_of(measured, f"explorer-{kind}-off", key, table)
        return (traced - off) / RECORDS_PER_ECHO if traced is not None and off is not None else None

    return figure


# The goals of issue 16, one place: the targets table and the JSON both come from here.
TARGETS = [
    *(
        Target(
            f"explorer-{kind} trace off vs bare-{kind}, msg/s",
            ratio_of(f"explorer-{kind}-off", f"bare-{kind}"),
            0.95,
        )
        for kind in ("ac", "sc")
    ),
    *(
        Target(
            f"explorer-{kind} trace {mode} vs trace off, msg/s",
            ratio_of(f"explorer-{kind}-{mode}", f"explorer-{kind}-off"),
            floor,
            capture_alone=ratio_of(f"explorer-{kind}-{CAPTURE}", f"explorer-{kind}-off")
            if mode == "compact"
            else None,
        )
        for kind in ("ac", "sc")
        for mode, floor in (("compact", 0.85), ("full", 0.80))
    ),
    *(
        Target(
            f"explorer-{kind} compact p99 vs trace off p99",
            ratio_of(f"explorer-{kind}-compact", f"explorer-{kind}-off", "p99_ms"),
            1.3,
            at_most=True,
            unit="×",
            capture_alone=ratio_of(f"explorer-{kind}-{CAPTURE}", f"explorer-{kind}-off", "p99_ms"),
        )
        for kind in ("ac", "sc")
    ),
    *(
        Target(
            f"explorer-{kind} compact: server CPU per traced event, at equal load",
            per_traced_event(kind, "compact", table="equal_load"),
            10,
            at_most=True,
            unit="µs",
            capture_alone=per_traced_event(kind, CAPTURE, table="equal_load"),
        )
        for kind in ("ac", "sc")
    ),
    Target(
        "explorer-ac compact handshakes/s vs bare-ac",
        ratio_of("explorer-ac-compact", "bare-ac", "handshakes_per_s", table="handshakes"),
        0.90,
    ),
    Target(
        "explorer-ac compact beside a stalled page vs without, msg/s",
        ratio_of(f"{STALLED_PAGE_SUBJECT} beside a stalled page", STALLED_PAGE_SUBJECT),
        0.95,
    ),
    Target("trace records dropped", lambda m: m.get("dropped_trace_records"), 0, at_most=True, unit=""),
    # The console's own lag, from when the trace made each line; and from the event itself, which adds
    # how long an event waited for its handler (its line needs the handler's thread, and says the wait).
    *(
        Target(name, lambda m, key=key: (m.get("screen") or {}).get(key), 100, at_most=True, unit="ms")
        for name, key in (
            ("line made to screen, p99 (the console's lag)", "p99_ms"),
            ("event to screen, p99 (with any wait for its handler)", "event_p99_ms"),
        )
    ),
    Target(
        "line made to screen, p99, while the scale scenario's connections open",
        lambda m: ((m.get("scale") or {}).get("screen") or {}).get("p99_ms"),
        100,
        at_most=True,
        unit="ms",
    ),
]


def kind_of(subject):
    return subject.split("-")[1] if subject.startswith(("bare-", "explorer-")) else None


def with_ratios(rows, key):
    """Each row's figure ``key`` against the raw app's, its bare consumer's and its trace off's."""
    rates = by_subject(rows, key)
    for row in rows:
        kind = kind_of(row["subject"])
        row["vs_raw"] = ratio(row[key], rates.get("raw"))
        row["vs_bare"] = ratio(row[key], rates.get(f"bare-{kind}")) if kind else None
        explorer = row["subject"].startswith("explorer-")
        row["vs_trace_off"] = ratio(row[key], rates.get(f"explorer-{kind}-off")) if explorer else None
    return rows


def ratio(numerator, denominator):
    return numerator / denominator if numerator and denominator else None


def percent(value):
    return "—" if value is None else f"{value:.0%}"


def pauses_text(pauses):
    """A server's full garbage collections, as its trace said when it stopped; unknown if it did not."""
    if pauses is None:
        return (
            "unknown: not said (the server's process ended without the trace's end, or its log was not read)"
        )
    return f"{pauses['count']:,} (longest {pauses['longest_ms']:.1f} ms, {pauses['total_ms']:.1f} ms in all)"


def number(value, digits=0):
    return "—" if value is None else f"{value:,.{digits}f}"


class Command(BaseCommand):
    help = "Each layer's cost, sync against async, and what the trace costs, under each server."

    def add_arguments(self, parser):
        parser.add_argument("--connections", type=int, default=20, help="echo: connections (default 20)")
        parser.add_argument("--trips", type=int, default=250, help="echo: round trips each (default 250)")
        parser.add_argument(
            "--rounds", type=int, default=5, help="echo: rounds, medians reported (default 5)"
        )
        parser.add_argument("--sleepers", type=int, default=10, help="concurrency: connections (default 10)")
        parser.add_argument(
            "--scale",
            type=int,
            default=2000,
            help=f"scale: connections (default 2000, at most {MAX_SCALE:,})",
        )
        parser.add_argument(
            "--handshakes",
            type=int,
            default=500,
            help="handshakes: connections per subject and round (default 500)",
        )
        parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
        parser.add_argument(
            "--cost",
            action="store_true",
            help="only the trace's own CPU per record, in one process with no server or network "
            "(steadier than an echo through a server; about a minute)",
        )
        parser.add_argument(
            "--instructions",
            action="store_true",
            help="only the trace's own cost in instructions, counted by valgrind in one process (within "
            "3%% from run to run, where time moves by a third; about five minutes)",
        )
        parser.add_argument(
            "--terminal",
            action="store_true",
            help="the trace's console on a pseudo-terminal, as a developer watches it (escape codes, lines "
            "fitted to 120 columns), not a file",
        )
        parser.add_argument("--json", dest="json_file", help="also write every figure here")
        parser.add_argument(
            "--server",
            action="append",
            choices=sorted(SERVERS),
            help="serve the subjects with this server; repeatable (default daphne)",
        )
        parser.add_argument(
            "--servers",
            choices=["all"],
            help="all: every installed server, uvicorn's three implementations too",
        )
        parser.add_argument("--url", help="a server already running explorer.bench.app (ws://HOST:PORT)")
        parser.add_argument("--pid", type=int, help="with --url: the server's PID, for its CPU and memory")

    def handle(self, *args, **options):
        sizes = {
            key: options[key] for key in ("connections", "trips", "rounds", "sleepers", "scale", "handshakes")
        }
        if options["quick"]:
            sizes.update(QUICK)
        for key, value in sizes.items():
            if value < 1:
                raise CommandError(f"--{key} must be at least 1")
        if sizes["scale"] > MAX_SCALE:
            raise CommandError(f"--scale is at most {MAX_SCALE:,} (open files: client and server together)")
        self.console = command_console(self.stdout)
        if not self.console.is_terminal:
            self.console.width = 150  # a file or a pipe: wide enough for every column
        if options["cost"]:
            self.cost(QUICK_COST_SIZES if options["quick"] else COST_SIZES, options["json_file"])
            return
        if options["instructions"]:
            self.instructions(
                QUICK_INSTRUCTION_ECHOES if options["quick"] else INSTRUCTION_ECHOES, options["json_file"]
            )
            return
        kinds = options["server"] or (
            [name for name, kind in SERVERS.items() if kind.installed] if options["servers"] else ["daphne"]
        )
        missing = [name for name in kinds if not SERVERS[name].installed]
        if missing:
            raise CommandError(f"not installed: {', '.join(missing)} (requirements.txt pins them)")
        # A server given by --url writes its console wherever it was started: not known here.
        console = "unknown" if options["url"] else "terminal" if options["terminal"] else "file"
        results = {"machine": machine(), "sizes": sizes, "console": console, "servers": {}}
        with scenarios.raised_file_limit(), tempfile.TemporaryDirectory() as scratch:
            if options["url"]:
                servers = {
                    "url": lambda part="": scenarios.BenchServer(options["url"].rstrip("/"), options["pid"])
                }
            else:
                # The trace's console goes to a file, or to a pseudo-terminal (--terminal): either way
                # the bench reads it at once, so no terminal emulator's speed is measured.
                servers = {
                    name: lambda part="", name=name: scenarios.start_server(
                        Path(scratch) / f"{name}{part and '-'}{part}.log", name, terminal=options["terminal"]
                    )
                    for name in kinds
                }
            for name, start in servers.items():
                server = start()
                try:
                    measured = asyncio.run(self.run(server, sizes))
                finally:
                    server.stop()
                measured["label"] = server.label
                measured["dropped_trace_records"] = server.dropped_records()
                measured["screen"] = server.screen_latency()
                measured["pauses"] = server.pauses()
                # The scale scenario on a server of its own: its memory figures start from a fresh
                # process, and the console's lag while thousands of connections open is a figure of its
                # own, not mixed into the lag at the echo's load.
                server = start("scale")
                try:
                    measured["scale"] = asyncio.run(self.run_scale(server, sizes))
                    measured["scale"]["own_server"] = not options["url"]  # a --url server is the same one
                finally:
                    server.stop()
                dropped = [measured["dropped_trace_records"], server.dropped_records()]
                measured["dropped_trace_records"] = None if None in dropped else sum(dropped)
                measured["scale"]["screen"] = server.screen_latency()
                measured["scale"]["pauses"] = server.pauses()
                measured["targets"] = [target.check(measured) for target in TARGETS]
                results["servers"][name] = measured
        self.report(results)
        if options["json_file"]:
            Path(options["json_file"]).write_text(json.dumps(results, indent=2) + "\n")
            self.console.print(f"figures written to {options['json_file']}")

    def cost(self, sizes, json_file):
        """``explorer.bench.cost`` in a process of its own, its trace console in a file: its figures."""
        with tempfile.TemporaryFile() as console:
            done = subprocess.run(
                [sys.executable, "-m", "explorer.bench.cost", *(f"--{key}={n}" for key, n in sizes.items())],
                cwd=scenarios.ROOT,
                stdout=subprocess.PIPE,
                stderr=console,
                check=False,
            )
            if done.returncode:
                console.seek(0)
                raise CommandError(
                    f"the measurement failed:\n{console.read().decode(errors='replace')[-2000:]}"
                )
        figures = {"machine": machine(), **json.loads(done.stdout)}
        self.report_cost(figures)
        if json_file:
            Path(json_file).write_text(json.dumps(figures, indent=2) + "\n")
            self.console.print(f"figures written to {json_file}")

    def instructions(self, echoes, json_file):
        """``explorer.bench.instructions``: each subject's echo, counted by valgrind in processes apart."""
        if not instructions.available():
            raise CommandError("--instructions needs valgrind (Debian: apt-get install valgrind)")
        self.console.print(f"Counting with valgrind: {len(instructions.SUBJECTS) * 2} runs, two at a time…")
        try:
            figures = {"machine": machine(), **instructions.measure(*echoes, cwd=scenarios.ROOT)}
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        per_echo, per_record = figures["per_echo"], figures["per_record"]
        rows = []
        for kind, off, traced in cost.PAIRS:
            bare = cost.BARE[kind]
            for subject in (bare, off, traced):
                rows.append(
                    (
                        subject,
                        number(per_echo[subject]),
                        percent(per_echo[bare] / per_echo[subject]) if subject != bare else "—",
                        number(per_record[kind]) if subject == traced else "—",
                    )
                )
        fewer, more = figures["echoes"]
        self.print_table(
            f"Instructions, counted by valgrind in one process (no server, no network): {more} echoes' "
            f"count less {fewer}'s, over {more - fewer}",
            ("subject", "instructions per echo", "bare's share", "per traced record"),
            rows,
        )
        self.console.print(
            f"per traced record: the compact echo's instructions over trace off's, over {RECORDS_PER_ECHO} "
            "records; every thread of the process counted, the renderer process not"
        )
        if json_file:
            Path(json_file).write_text(json.dumps(figures, indent=2) + "\n")
            self.console.print(f"figures written to {json_file}")

    def report_cost(self, figures):
        echo, per_record = figures["echo"], figures["per_record"]
        rows = []
        for kind, off, traced in cost.PAIRS:
            for subject in (off, traced):
                traced_row = subject == traced
                rows.append(
                    (
                        subject,
                        number(echo[subject]["cpu_us_per_echo"], 1),
                        number(echo[subject]["loop_cpu_us_per_echo"], 1),
                        number(per_record[kind]["us_per_record"], 1) if traced_row else "—",
                        percent(per_record[kind]["cpu_bound_share"]) if traced_row else "—",
                    )
                )
        self.print_table(
            f"The trace's own cost, in one process (no server, no network): median of "
            f"{figures['rounds']} rounds × {figures['echoes']} echoes",
            (
                "subject",
                "CPU µs/echo",
                "on the event loop's thread",
                "µs per traced record",
                "CPU-bound share",
            ),
            rows,
        )
        self.console.print(
            f"µs per traced record: the traced echo's CPU over trace off's, over {RECORDS_PER_ECHO} records; "
            "CPU-bound share: the trace-off throughput a server bound by this CPU keeps (the renderer "
            "process not counted)"
        )
        handshakes, per_handshake = figures["handshakes"], figures["per_handshake"]
        rows = []
        for kind, off, traced in cost.PAIRS:
            for subject in (cost.BARE[kind], off, traced):
                traced_row = subject == traced
                rows.append(
                    (
                        subject,
                        number(handshakes[subject]["cpu_us_per_handshake"]),
                        number(handshakes[subject]["loop_cpu_us_per_handshake"]),
                        number(handshakes[subject]["collections_per_1000"], 1),
                        number(per_handshake[kind]["us_per_traced_handshake"]) if traced_row else "—",
                        percent(per_handshake[kind]["share_of_bare"]) if traced_row else "—",
                    )
                )
        self.print_table(
            f"Handshakes, in one process: median of {figures['rounds']} rounds × "
            f"{figures['handshakes_per_round']} connections opened, accepted and closed",
            (
                "subject",
                "CPU µs/handshake",
                "on the event loop's thread",
                "garbage collections per 1,000",
                "µs the trace adds",
                "vs bare",
            ),
            rows,
        )
        self.console.print(
            "µs the trace adds: compact's CPU over trace off's; vs bare: the bare consumer's handshake rate "
            "a server bound by this CPU keeps with the trace on (the renderer process not counted)"
        )
        self.print_table(
            "The parts of the trace on an AsyncConsumer's path, compact, one echo's worth each",
            ("part", "µs per call"),
            [(part, number(us, 2)) for part, us in figures["parts_us"].items()],
        )
        self.print_table(
            f"The renderer process's work, in one process: median of {figures['rounds']} rounds over "
            f"{figures['echoes']} echoes' records",
            ("subject", "µs per record to a file", "to a terminal"),
            [
                (
                    subject,
                    number(each["us_per_record_to_file"], 1),
                    number(each["us_per_record_to_terminal"], 1),
                )
                for subject, each in figures["renderer"].items()
            ],
        )
        self.console.print(
            "the records read from their frames and rendered by the renderer's own loop: CPU a server's "
            "machine spends beside the server (a file is what the bench's servers write to)"
        )
        self.print_table(
            f"A watching page's lines, in one process: median of {figures['rounds']} rounds over "
            f"{figures['echoes']} echoes' records",
            ("subject", "µs per record"),
            [(subject, number(each["us_per_line"], 1)) for subject, each in figures["panel"].items()],
        )
        self.console.print(
            "each record made into the page panel's line (as shown, in JSON) on the listener's thread, which "
            "shares the GIL with the event loop: only while a page watches and has room"
        )
        self.print_table(
            f"Full garbage collections, in one process: {figures['full_collections_echoes']:,} echoes per "
            f"subject, {cost.FULL_COLLECTION_CONNECTIONS} connections at once",
            ("subject", "full collections per 10,000 echoes"),
            [(subject, number(each, 1)) for subject, each in figures["full_collections_per_10000"].items()],
        )
        self.console.print(
            "each stops every thread of the process (tens of ms here); objects alive as young collections "
            "run bring the next one closer, and lines waiting in the trace's queue are alive then"
        )

    @staticmethod
    def equal_load_rates(echo_rounds):
        """Each endpoint's subjects for the echo at equal load, with the rate to pace them at: a share of
        the slowest one's median rate at full speed."""
        rates = by_subject(scenarios.median_rows(itertools.chain.from_iterable(echo_rounds)), "rate")
        load = []
        for kind in ("ac", "sc"):
            subjects = [f"explorer-{kind}-{mode}" for mode in EXPLORER_MODES]
            load.append((EQUAL_LOAD_SHARE * min(rates[subject] for subject in subjects), subjects))
        return load

    def progress(self):
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        return Progress(*columns, console=self.console, transient=True)

    async def run(self, server, sizes):
        echo_subjects = list(SUBJECT_NAMES)
        per_round = sizes["connections"] * sizes["trips"]
        with self.progress() as progress:
            # Every subject, and the compact one again beside a stalled page.
            task = progress.add_task("echo", total=(len(echo_subjects) + 1) * sizes["rounds"] * per_round)
            echoes = [(f"echo: {subject}", scenarios.echo, subject) for subject in echo_subjects]
            echoes.append(
                (
                    f"echo: {STALLED_PAGE_SUBJECT} beside a stalled page",
                    scenarios.echo_beside_a_stalled_page,
                    STALLED_PAGE_SUBJECT,
                )
            )
            echo_rounds = []
            for _ in range(sizes["rounds"]):
                rows = []
                for description, echo, subject in echoes:  # interleaved, so drift hits every subject alike
                    progress.update(task, description=description)
                    advance = functools.partial(progress.advance, task)
                    rows.append(await echo(server, subject, sizes["connections"], sizes["trips"], advance))
                echo_rounds.append(rows)
            equal_load = self.equal_load_rates(echo_rounds)
            seconds = EQUAL_LOAD_SECONDS if sizes["rounds"] > 1 else EQUAL_LOAD_SECONDS / 6
            total = sum(len(subjects) for _, subjects in equal_load) * sizes["rounds"]
            task = progress.add_task("equal load", total=total)
            equal_load_rounds = []
            for _ in range(sizes["rounds"]):
                rows = []
                for rate, subjects in equal_load:
                    for subject in subjects:
                        progress.update(task, description=f"equal load: {subject} at {rate:,.0f} msg/s")
                        rows.append(
                            await scenarios.paced_echo(server, subject, sizes["connections"], rate, seconds)
                        )
                        progress.advance(task)
                equal_load_rounds.append(rows)
            task = progress.add_task("handshakes", total=len(HANDSHAKE_SUBJECTS) * sizes["rounds"])
            handshake_rounds = []
            for _ in range(sizes["rounds"]):
                handshakes = []
                for subject in HANDSHAKE_SUBJECTS:
                    progress.update(task, description=f"handshakes: {sizes['handshakes']} on {subject}")
                    handshakes.append(await scenarios.handshakes(server, subject, sizes["handshakes"]))
                    progress.advance(task)
                handshake_rounds.append(handshakes)
            task = progress.add_task("concurrency", total=3)
            concurrency = {"sleepers": [], "cross_stall": None}
            for subject in ("explorer-ac-off", "explorer-sc-off"):
                progress.update(
                    task, description=f"concurrency: /sleep 0.5 × {sizes['sleepers']} on {subject}"
                )
                concurrency["sleepers"].append(await scenarios.sleepers(server, subject, sizes["sleepers"]))
                progress.advance(task)
            progress.update(task, description="concurrency: /block 1 on explorer-sc-off")
            concurrency["cross_stall"] = await scenarios.cross_stall(server)
            progress.advance(task)
            seconds = QUERY_STALL_SECONDS if sizes["rounds"] > 1 else QUERY_STALL_SECONDS / 2
            progress.add_task(f"ORM stall: /query on {scenarios.QUERIER}, {2 * seconds:g} s", total=None)
            query_stall = await scenarios.query_stall(server, seconds=seconds)
        return {
            "echo": with_ratios(scenarios.median_rows(itertools.chain.from_iterable(echo_rounds)), "rate"),
            "handshakes": with_ratios(
                scenarios.median_rows(itertools.chain.from_iterable(handshake_rounds), ("handshakes_per_s",)),
                "handshakes_per_s",
            ),
            "equal_load": scenarios.median_rows(
                itertools.chain.from_iterable(equal_load_rounds), scenarios.PACED_FIGURES
            ),
            "echo_rounds": echo_rounds,
            "handshake_rounds": handshake_rounds,
            "equal_load_rounds": equal_load_rounds,
            "concurrency": concurrency,
            "query_stall": query_stall,
        }

    async def run_scale(self, server, sizes):
        with self.progress() as progress:
            task = progress.add_task(f"scale: {sizes['scale']:,} connections", total=sizes["scale"])
            advance = functools.partial(progress.advance, task)
            return await scenarios.scale(server, sizes["scale"], on_progress=advance)

    def report(self, results):
        where = {"terminal": "a pseudo-terminal", "file": "a file", "unknown": "wherever the server sends it"}
        self.console.print(f"The trace's console went to {where[results.get('console', 'file')]}.")
        for measured in results["servers"].values():
            self.report_server(measured, results["sizes"])
        if len(results["servers"]) > 1:
            self.report_across(results)

    def report_across(self, results):
        """One table for every server: echo msg/s per subject, and the scale figures."""
        servers = results["servers"].values()
        echoes = [by_subject(m["echo"], "rate") for m in servers]
        handshakes = [by_subject(m["handshakes"], "handshakes_per_s") for m in servers]
        rows = [(subject, *(number(rates.get(subject)) for rates in echoes)) for subject in SUBJECT_NAMES]
        rows += [
            (f"handshakes/s {subject}", *(number(rates.get(subject)) for rates in handshakes))
            for subject in HANDSHAKE_SUBJECTS
        ]
        rows.append(("handshakes/s (scale)", *(number(m["scale"]["handshakes_per_s"]) for m in servers)))
        rows.append(
            (
                "RSS KiB per connection (scale)",
                *(number(m["scale"]["rss_per_connection_kb"], 1) for m in servers),
            )
        )
        self.print_table(
            "Across servers: echo msg/s (median) and scale", ("subject", *(m["label"] for m in servers)), rows
        )

    def warn(self, text):
        self.console.print(Text(f"⚠ {text}", style="bold yellow"))

    def print_table(self, title, columns, rows):
        """A report's table: its title on the left, a column of labels, then figures, right-aligned."""
        table = Table(title=title, title_justify="left")
        table.add_column(columns[0])
        for column in columns[1:]:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    def report_query_stall(self, stall):
        """Echo and /history latency per subject, alone and while a sync client's queries hold the thread."""
        beside = stall["beside queries"]
        self.print_table(
            f"ORM stall: echo and /history while {stall['querier']} runs /query {stall['query_s']:g} "
            f"({beside['queries']} queries in {stall['seconds']:g} s)",
            ("subject, operation", "alone p50", "alone max", "beside p50", "beside max", "beside ≥ 100 ms"),
            [
                (
                    f"{subject} {operation}",
                    *(
                        f"{figures[key]:,.1f} ms"
                        for figures in (alone, beside[subject][operation])
                        for key in ("p50_ms", "max_ms")
                    ),
                    f"{beside[subject][operation]['over_100ms']} of {beside[subject][operation]['count']:,}",
                )
                for subject, operations in stall["alone"].items()
                if subject != "queries"
                for operation, alone in operations.items()
            ],
        )

    def report_cpu_per_traced_event(self, results, table, load):
        for kind in ("ac", "sc"):
            for process, key in CPU_FIGURES:
                figures = [per_traced_event(kind, mode, key, table)(results) for mode in ("compact", "full")]
                captured = per_traced_event(kind, CAPTURE, key, table)(results)
                if None not in figures:
                    # The capture is the server's work alone: it sends its renderer nothing.
                    server = captured is not None and process == "server"
                    alone = f" (its capture alone {captured:.1f} µs)" if server else ""
                    self.console.print(
                        f"{process} CPU per traced event on explorer-{kind}, {load}: compact "
                        f"{figures[0]:.1f} µs{alone}, full {figures[1]:.1f} µs ({RECORDS_PER_ECHO} records "
                        "per echo, over trace off)"
                    )

    def report_server(self, results, sizes):
        self.print_table(
            f"{results['label']} · Echo: {sizes['connections']} connections × {sizes['trips']} "
            f"round trips, median of {sizes['rounds']} round(s)",
            ECHO_COLUMNS,
            [
                (
                    row["subject"],
                    number(row["rate"]),
                    number(row["p50_ms"], 2),
                    number(row["p95_ms"], 2),
                    number(row["p99_ms"], 2),
                    number(row["cpu_us_per_message"]),
                    number(row["renderer_cpu_us_per_message"]),
                    percent(row["client_cpu_share"]),
                    percent(row["vs_raw"]),
                    percent(row["vs_bare"]),
                    percent(row["vs_trace_off"]),
                )
                for row in results["echo"]
            ],
        )
        bound = [row["subject"] for row in results["echo"] if (row["client_cpu_share"] or 0) >= CLIENT_BOUND]
        if bound:
            self.warn(
                f"the bench's client used {CLIENT_BOUND:.0%} of a core or more on {', '.join(bound)}: "
                "there the client, not the server, set the pace, and the server's share is understated"
            )
        self.report_cpu_per_traced_event(results, "echo", "at full speed")
        if results.get("equal_load"):
            self.print_table(
                f"Echo at equal load: each endpoint's trace modes paced at {EQUAL_LOAD_SHARE:.0%} of the "
                f"slowest one's full-speed rate, {sizes['connections']} connections, median of "
                f"{sizes['rounds']} round(s)",
                (
                    "subject",
                    "offered msg/s",
                    "msg/s",
                    "p50 ms",
                    "p99 ms",
                    "server CPU µs/msg",
                    "renderer CPU µs/msg",
                ),
                [
                    (
                        row["subject"],
                        number(row["offered_rate"]),
                        number(row["rate"]),
                        number(row["p50_ms"], 2),
                        number(row["p99_ms"], 2),
                        number(row["cpu_us_per_message"]),
                        number(row["renderer_cpu_us_per_message"]),
                    )
                    for row in results["equal_load"]
                ],
            )
            self.report_cpu_per_traced_event(results, "equal_load", "at equal load")

        self.print_table(
            f"Handshakes: {sizes['handshakes']} per subject, {scenarios.CONNECT_BATCH} in flight, "
            f"median of {sizes['rounds']} round(s)",
            ("subject", "handshakes/s", "vs bare", "listen-queue drops, all rounds"),
            [
                (
                    row["subject"],
                    number(row["handshakes_per_s"]),
                    percent(row["vs_bare"]),
                    number(row.get("listen_overflows")),
                )
                for row in results["handshakes"]
            ],
        )
        dropped = sum(row.get("listen_overflows") or 0 for row in results["handshakes"])
        dropped += results["scale"].get("listen_overflows") or 0
        if dropped:
            self.warn(
                f"{dropped:,} connection attempts found a listen queue full (the machine's count, during the "
                "handshake and scale scenarios): each waited about a second for a retransmission, so "
                "handshakes/s there understates the server"
            )

        concurrency = results["concurrency"]
        self.print_table(
            "Concurrency: every connection sends /sleep 0.5 at once",
            ("subject", "connections", "all answered after"),
            [
                (row["subject"], str(row["connections"]), f"{row['all_answered_s']:.2f} s")
                for row in concurrency["sleepers"]
            ],
        )
        stall = concurrency["cross_stall"]
        self.print_table(
            f"Cross-stall: one echo each while {stall['blocker']} runs /block {stall['block_s']:g}",
            ("echo on", "took"),
            [(subject, f"{seconds * 1000:,.1f} ms") for subject, seconds in stall["echo_s"].items()],
        )
        self.report_query_stall(results["query_stall"])

        scale = results["scale"]
        mib = 1024 * 1024
        rows = [
            ("handshakes per second", number(scale["handshakes_per_s"])),
            ("listen-queue drops", number(scale.get("listen_overflows"))),
            ("server RSS per connection", f"{number(scale['rss_per_connection_kb'], 1)} KiB"),
            ("one message on every connection", f"{scale['round_s']:.2f} s ({scale['answered']:,} answered)"),
        ]
        screen = scale.get("screen")
        if screen:
            rows.append(
                (
                    "line made to screen: p50 / p99 / max",
                    f"{screen['p50_ms']:,.0f} / {screen['p99_ms']:,.0f} / {screen['max_ms']:,.0f} ms",
                )
            )
        rows.append(("full garbage collections", pauses_text(scale.get("pauses"))))
        for moment in ("before", "open", "after"):
            state = scale[moment]
            rss = number(state["rss"] / mib, 1) if state["rss"] is not None else "—"
            rows.append(
                (
                    f"server {moment}: RSS MiB / threads / open files",
                    f"{rss} / {state['threads']} / {state['open_files']}",
                )
            )
        self.print_table(
            f"Scale{', on a server of its own' if scale.get('own_server') else ''}: {scale['connections']:,} "
            f"connections across {', '.join(scale['subjects'])}",
            ("figure", "value"),
            rows,
        )

        screen = results.get("screen")
        if screen:
            self.console.print(
                f"{results['label']}, every scenario but scale: over {screen['records']:,} records, from "
                "the trace's line to the "
                f"console: p50 {screen['p50_ms']:.1f} ms, p99 {screen['p99_ms']:.1f} ms, max "
                f"{screen['max_ms']:.1f} ms; from the event itself, with any wait for its handler: p50 "
                f"{screen['event_p50_ms']:.1f} ms, p99 {screen['event_p99_ms']:.1f} ms, max "
                f"{screen['event_max_ms']:.1f} ms"
            )
        self.console.print(
            f"{results['label']}, every scenario but scale: full garbage collections paused the server's "
            f"process (every thread at once): {pauses_text(results.get('pauses'))}"
        )
        self.report_targets(results)

    def report_targets(self, results):
        targets = []
        for target in results["targets"]:
            mark = Text("met", style="green") if target["met"] else Text("missed", style="bold red")
            goal = ("≤ " if target["at_most"] else "≥ ") + shown(target["bound"], target["unit"])
            targets.append(
                (
                    target["target"],
                    shown(target["value"], target["unit"]),
                    spread(target["rounds"], target["unit"]),
                    ""
                    if target.get("capture_alone") is None
                    else shown(target["capture_alone"], target["unit"]),
                    goal,
                    mark,
                )
            )
        self.print_table(
            "Targets (figures within this run; each round: the lowest and highest from one round alone; "
            "capture alone: the same figure with compact's lines made and let go, nothing queued or "
            "rendered, as far as any queue and renderer could take it)",
            ("target", "figure", "each round", "capture alone", "goal", ""),
            targets,
        )
        dropped = results["dropped_trace_records"]
        if dropped is not None:
            self.console.print(
                f"{results['label']}: trace records dropped by the server's full queue: {dropped:,}"
            )


def spread(rounds, unit):
    """The lowest and the highest of a figure over the rounds, or a dash for one round or none."""
    if len(rounds) < 2:
        return "—"
    return f"{shown(min(rounds), unit)} to {shown(max(rounds), unit)}"


def shown(value, unit):
    """A target's figure in its unit."""
    if value is None:
        return "—"
    if unit == "%":
        return percent(value)
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:,.1f} {unit}".rstrip()
