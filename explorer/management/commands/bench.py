"""``python manage.py bench``: each layer's cost, sync against async, and what the trace costs.

Starts one daphne serving every subject (``explorer.bench.app``), runs the
echo, concurrency and scale scenarios against it from a websockets client in
this process (both on this machine, so they share its cores), and prints a
table per scenario. ``--json FILE`` keeps every figure with the machine's
details, so two runs can be compared.
"""

import asyncio
import json
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from explorer.bench import scenarios
from explorer.bench.app import SUBJECTS
from explorer.serving import SERVERS, machine

MAX_SCALE = 8000  # client and server sockets together stay well inside 20,000 open files
QUICK = {"connections": 4, "trips": 40, "rounds": 1, "sleepers": 4, "scale": 100}
# (name, numerator, denominator, at least): the targets, as ratios within one run.
TARGETS = [
    (f"explorer {kind} trace off vs bare {kind}", f"explorer-{kind}-off", f"bare-{kind}", 0.95)
    for kind in ("ac", "sc")
] + [
    (f"explorer {kind} trace {mode} vs trace off", f"explorer-{kind}-{mode}", f"explorer-{kind}-off", floor)
    for kind in ("ac", "sc")
    for mode, floor in (("compact", 0.60), ("full", 0.30))
]


def kind_of(subject):
    return subject.split("-")[1] if subject.startswith(("bare-", "explorer-")) else None


def ratio(numerator, denominator):
    return numerator / denominator if numerator and denominator else None


def percent(value):
    return "—" if value is None else f"{value:.0%}"


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
        parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
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
        sizes = {key: options[key] for key in ("connections", "trips", "rounds", "sleepers", "scale")}
        if options["quick"]:
            sizes.update(QUICK)
        for key, value in sizes.items():
            if value < 1:
                raise CommandError(f"--{key} must be at least 1")
        if sizes["scale"] > MAX_SCALE:
            raise CommandError(f"--scale is at most {MAX_SCALE:,} (open files: client and server together)")
        self.console = Console(file=self.stdout._out, highlight=False)
        if not self.console.is_terminal:
            self.console.width = 150  # a file or a pipe: wide enough for every column
        kinds = options["server"] or (
            [name for name, kind in SERVERS.items() if kind.installed] if options["servers"] else ["daphne"]
        )
        missing = [name for name in kinds if not SERVERS[name].installed]
        if missing:
            raise CommandError(f"not installed: {', '.join(missing)} (requirements.txt pins them)")
        results = {"machine": machine(), "sizes": sizes, "servers": {}}
        with scenarios.raised_file_limit(), tempfile.TemporaryDirectory() as scratch:
            if options["url"]:
                servers = {"url": lambda: scenarios.BenchServer(options["url"].rstrip("/"), options["pid"])}
            else:
                # The trace's console goes to a file: the terminal's speed is not the subject.
                servers = {
                    name: lambda name=name: scenarios.start_server(Path(scratch) / f"{name}.log", name)
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
                measured["targets"] = self.targets(measured["echo"])
                results["servers"][name] = measured
        self.report(results)
        if options["json_file"]:
            Path(options["json_file"]).write_text(json.dumps(results, indent=2) + "\n")
            self.console.print(f"figures written to {options['json_file']}")

    async def run(self, server, sizes):
        echo_subjects = list(SUBJECTS)
        per_round = sizes["connections"] * sizes["trips"]
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task("echo", total=len(echo_subjects) * sizes["rounds"] * per_round)
            rows = []
            for _ in range(sizes["rounds"]):
                for subject in echo_subjects:  # interleaved, so drift hits every subject alike
                    progress.update(task, description=f"echo: {subject}")
                    rows.append(
                        await scenarios.echo(
                            server,
                            subject,
                            sizes["connections"],
                            sizes["trips"],
                            lambda n: progress.advance(task, n),
                        )
                    )
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
            task = progress.add_task("scale", total=sizes["scale"])
            progress.update(task, description=f"scale: {sizes['scale']:,} connections")
            scale = await scenarios.scale(
                server, sizes["scale"], on_progress=lambda n: progress.advance(task, n)
            )
        return {
            "echo": self.with_ratios(scenarios.median_rows(rows)),
            "concurrency": concurrency,
            "scale": scale,
        }

    def with_ratios(self, rows):
        rates = {row["subject"]: row["rate"] for row in rows}
        for row in rows:
            subject, kind = row["subject"], kind_of(row["subject"])
            row["vs_raw"] = ratio(row["rate"], rates.get("raw"))
            row["vs_bare"] = ratio(row["rate"], rates.get(f"bare-{kind}")) if kind else None
            mode = subject.rsplit("-", 1)[1] if subject.startswith("explorer-") else None
            row["vs_trace_off"] = ratio(row["rate"], rates.get(f"explorer-{kind}-off")) if mode else None
        return rows

    def targets(self, rows):
        rates = {row["subject"]: row["rate"] for row in rows}
        found = []
        for name, numerator, denominator, floor in TARGETS:
            value = ratio(rates.get(numerator), rates.get(denominator))
            found.append(
                {
                    "target": name,
                    "ratio": value,
                    "at_least": floor,
                    "met": value is not None and value >= floor,
                }
            )
        return found

    def report(self, results):
        for measured in results["servers"].values():
            self.report_server(measured, results["sizes"])
        if len(results["servers"]) > 1:
            self.report_across(results)

    def report_across(self, results):
        """One table for every server: echo msg/s per subject, and the scale figures."""
        servers = results["servers"]
        table = Table(title="Across servers: echo msg/s (median) and scale", title_justify="left")
        table.add_column("subject")
        for measured in servers.values():
            table.add_column(measured["label"], justify="right")
        for subject in SUBJECTS:
            rates = [
                {row["subject"]: row["rate"] for row in m["echo"]}.get(subject) for m in servers.values()
            ]
            table.add_row(subject, *(number(rate) for rate in rates))
        table.add_row(
            "handshakes/s (scale)", *(number(m["scale"]["handshakes_per_s"]) for m in servers.values())
        )
        table.add_row(
            "RSS KiB per connection (scale)",
            *(number(m["scale"]["rss_per_connection_kb"], 1) for m in servers.values()),
        )
        self.console.print(table)

    def report_server(self, results, sizes):
        echo = Table(
            title=f"{results['label']} · Echo: {sizes['connections']} connections × {sizes['trips']} "
            f"round trips, median of {sizes['rounds']} round(s)",
            title_justify="left",
        )
        for column in (
            "subject",
            "msg/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "server CPU µs/msg",
            "vs raw",
            "vs bare",
            "vs trace off",
        ):
            echo.add_column(column, justify="left" if column == "subject" else "right")
        for row in results["echo"]:
            echo.add_row(
                row["subject"],
                number(row["rate"]),
                number(row["p50_ms"], 2),
                number(row["p95_ms"], 2),
                number(row["p99_ms"], 2),
                number(row["cpu_us_per_message"]),
                percent(row["vs_raw"]),
                percent(row["vs_bare"]),
                percent(row["vs_trace_off"]),
            )
        self.console.print(echo)

        concurrency = results["concurrency"]
        sleepers = Table(title="Concurrency: every connection sends /sleep 0.5 at once", title_justify="left")
        for column in ("subject", "connections", "all answered after"):
            sleepers.add_column(column, justify="left" if column == "subject" else "right")
        for row in concurrency["sleepers"]:
            sleepers.add_row(row["subject"], str(row["connections"]), f"{row['all_answered_s']:.2f} s")
        self.console.print(sleepers)
        stall = concurrency["cross_stall"]
        cross = Table(
            title=f"Cross-stall: one echo each while {stall['blocker']} runs /block {stall['block_s']:g}",
            title_justify="left",
        )
        cross.add_column("echo on")
        cross.add_column("took", justify="right")
        for subject, seconds in stall["echo_s"].items():
            cross.add_row(subject, f"{seconds * 1000:,.1f} ms")
        self.console.print(cross)

        scale = results["scale"]
        table = Table(
            title=f"Scale: {scale['connections']:,} connections across {', '.join(scale['subjects'])}",
            title_justify="left",
        )
        table.add_column("figure")
        table.add_column("value", justify="right")
        mib = 1024 * 1024
        rows = [
            ("handshakes per second", number(scale["handshakes_per_s"])),
            ("server RSS per connection", f"{number(scale['rss_per_connection_kb'], 1)} KiB"),
            ("one message on every connection", f"{scale['round_s']:.2f} s ({scale['answered']:,} answered)"),
        ]
        for moment in ("before", "open", "after"):
            state = scale[moment]
            rss = number(state["rss"] / mib, 1) if state["rss"] is not None else "—"
            rows.append(
                (
                    f"server {moment}: RSS MiB / threads / open files",
                    f"{rss} / {state['threads']} / {state['open_files']}",
                )
            )
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

        targets = Table(title="Targets (ratios within this run)", title_justify="left")
        for column in ("target", "ratio", "at least", ""):
            targets.add_column(column, justify="left" if column == "target" else "right")
        for target in results["targets"]:
            mark = Text("met", style="green") if target["met"] else Text("missed", style="bold red")
            targets.add_row(target["target"], percent(target["ratio"]), percent(target["at_least"]), mark)
        self.console.print(targets)
        dropped = results["dropped_trace_records"]
        if dropped is not None:
            self.console.print(
                f"{results['label']}: trace records dropped by the server's full queue: {dropped:,}"
            )
