"""``python manage.py servers``: how each ASGI server treats what the explorer asks of it, side by side.

Starts each installed server on a free loopback port serving the explorer
(``explorer.serving``), runs the probes of ``explorer.matrix`` against each,
and prints one table: a row per behaviour, what the application asked for,
and a column per server with what reached the wire (and, where it matters,
what the application was told). ``--json FILE`` keeps every observation
with the versions it was made on.
"""

import asyncio
import dataclasses
import json
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from explorer import matrix
from explorer.serving import MAIN, SERVERS, RunningServer, machine
from explorer.trace.render import command_console


def cells(results, row):
    """(what the app asked, a cell per server) for one row: the wire, then what the app was told."""
    servers = results["servers"].values()
    asked = next((s["observations"][row]["asked"] for s in servers), "")
    return asked, [
        (s["observations"][row]["wire"], s["observations"][row]["app"]) for s in results["servers"].values()
    ]


def markdown(results):
    """The matrix as a Markdown table, every cell escaped for one."""

    def escaped(text):
        return text.replace("|", "\\|").replace("\n", " ")

    labels = [s["label"] for s in results["servers"].values()]
    lines = [
        "| behaviour | the app asked | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for row, (title, _) in matrix.ROWS.items():
        asked, row_cells = cells(results, row)
        shown = [escaped(wire + (f" ({app})" if app else "")) for wire, app in row_cells]
        lines.append(f"| {escaped(title)} | {escaped(asked)} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "How each ASGI server treats what the explorer asks of it, side by side, from the wire."

    def add_arguments(self, parser):
        parser.add_argument(
            "--server",
            action="append",
            choices=sorted(SERVERS),
            help=f"probe this server; repeatable (default: {', '.join(MAIN)}, those installed)",
        )
        parser.add_argument(
            "--all", action="store_true", help="every server, uvicorn's three implementations too"
        )
        parser.add_argument("--json", dest="json_file", help="also write every observation here")
        parser.add_argument("--markdown", help="also write the matrix here as a Markdown table")

    def handle(self, *args, **options):
        names = options["server"] or (list(SERVERS) if options["all"] else list(MAIN))
        missing = [name for name in names if not SERVERS[name].installed]
        if options["server"] and missing:
            raise CommandError(f"not installed: {', '.join(missing)} (requirements.txt pins them)")
        kinds = [SERVERS[name] for name in names if SERVERS[name].installed]
        self.console = command_console(self.stdout)
        if not self.console.is_terminal:
            self.console.width = 200
        results = {"machine": machine(), "servers": {}}
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task("starting", total=len(kinds) * len(matrix.ROWS))
            for kind in kinds:
                progress.update(task, description=f"{kind.label}: starting")
                results["servers"][kind.name] = {
                    "label": kind.label,
                    "version": kind.version,
                    "implementation": kind.implementation,
                    "observations": self.probe(kind, progress, task),
                }
        self.report(results)
        if options["json_file"]:
            Path(options["json_file"]).write_text(json.dumps(results, indent=2) + "\n")
            self.console.print(f"observations written to {options['json_file']}")
        if options["markdown"]:
            Path(options["markdown"]).write_text(markdown(results))
            self.console.print(f"matrix written to {options['markdown']}")

    def probe(self, kind, progress, task):
        with tempfile.TemporaryDirectory() as scratch:
            recording = Path(scratch) / "trace.jsonl"
            env = {"EXPLORER_TRACE_FILE": str(recording), "EXPLORER_TRACE_MAX_PAYLOAD": "64"}
            server = RunningServer(kind, env=env, log=Path(scratch) / "server.log")
            try:

                def done(row):
                    progress.update(task, description=f"{kind.label}: {matrix.ROWS[row][0]}")
                    progress.advance(task)

                observed = asyncio.run(matrix.probe_all(matrix.Probe(server, recording), done))
            finally:
                server.stop()
        return {row: dataclasses.asdict(observation) for row, observation in observed.items()}

    def report(self, results):
        servers = results["servers"]
        table = Table(title="How each server treats what the explorer asks (from the wire)", show_lines=True)
        table.add_column("behaviour", style="bold")
        table.add_column("the app asked", style="dim")
        for server in servers.values():
            table.add_column(server["label"])
        for row, (title, _) in matrix.ROWS.items():
            asked, row_cells = cells(results, row)
            shown = []
            for wire, app in row_cells:
                cell = Text(wire)
                if app:
                    cell.append(f"\n{app}", style="dim")
                shown.append(cell)
            table.add_row(title, asked, *shown)
        self.console.print(table)
