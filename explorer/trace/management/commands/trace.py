"""``python manage.py trace FILE``: render a recorded trace, filter it, diff two connections, or write it as
a page (``--html``) or a picture of the console (``--svg``)."""

import contextlib
import io
import os
import sys
from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.table import Table
from rich.text import Text

from explorer.trace import export, recording, regression, replay
from explorer.trace.config import CLOCKS, trace_settings
from explorer.trace.display import printable
from explorer.trace.handlers import RichTraceHandler
from explorer.trace.render import command_console, console, dropped, render
from explorer.trace.replay import entries
from explorer.trace.tracebacks import Failure

SVG_WIDTH = 110  # columns of a picture: a README's width


def plural(count, noun):
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Render a JSON Lines trace recorded with EXPLORER_TRACE_FILE: all of it, the records that pass "
        "the filters, or (--diff A B) two connections' events lined up side by side."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            nargs="+",
            help="the recording; - reads standard input. Several files (processes sharing Redis, say) "
            "are merged by time, each connection named after its file (a:sc#1)",
        )
        parser.add_argument(
            "-c",
            "--connection",
            action="append",
            default=[],
            help="only this connection: sc#1, ChatConsumer#3, /ws/chat/lobby/#3 or #3; repeatable",
        )
        parser.add_argument(
            "-e",
            "--endpoint",
            action="append",
            default=[],
            help="only connections of this consumer or path: sc, ChatConsumer, chat.consumers.ChatConsumer, "
            "/ws/chat/lobby/; repeatable",
        )
        parser.add_argument(
            "-t",
            "--type",
            action="append",
            default=[],
            help="only this event type (websocket.receive, or receive) or kind (scope, in, out, layer, "
            "query, done, note, error, exit); repeatable",
        )
        parser.add_argument("--violations", action="store_true", help="only records that broke an ASGI rule")
        parser.add_argument("--mode", choices=["compact", "full"], default="compact")
        parser.add_argument(
            "--clock",
            choices=CLOCKS,
            help="the time column: since the process's trace started, since the connection arrived, or "
            "the wall clock (default: EXPLORER_TRACE_CLOCK's, process)",
        )
        parser.add_argument(
            "--run", action="append", default=[], type=int, help="only this run of the file; repeatable"
        )
        parser.add_argument("--runs", action="store_true", help="list the runs the recording holds")
        parser.add_argument("--diff", nargs=2, metavar=("A", "B"), help="line up connections A and B")
        parser.add_argument(
            "--pytest",
            metavar="CONNECTION",
            help="write a pytest module that replays this connection's client side and expects "
            "the same events back",
        )
        parser.add_argument(
            "--html",
            metavar="OUT",
            help="write the records that pass the filters to OUT as one self-contained HTML page: the "
            "explorer's trace panel and timeline, loading nothing from the network",
        )
        parser.add_argument(
            "--svg",
            metavar="OUT",
            help="write the records that pass the filters to OUT as a picture of the console (SVG), "
            f"--width columns wide (default {SVG_WIDTH})",
        )
        parser.add_argument("--width", type=int, help="console width (default: the terminal's)")

    def handle(self, *args, **options):
        try:
            self.run(options)
        except BrokenPipeError:
            # The reader went away (| head): stop quietly, like other Unix tools.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def run(self, options):
        self.console = command_console(self.stdout, options["width"])
        self.clock = options["clock"] or trace_settings()["CLOCK"]
        loaded = self.read(options["file"])
        if options["runs"]:
            return self.list_runs(loaded)
        missing = sorted(set(options["run"]) - {run["run"] for run in loaded.runs})
        if missing:
            held = ", ".join(str(run["run"]) for run in loaded.runs) or "none"
            raise CommandError(f"no run {', '.join(map(str, missing))} in the recording; it has {held}")
        lines = [line for line in loaded.lines if not options["run"] or line.get("run") in options["run"]]
        records = entries(lines)
        if options["pytest"]:
            return self.pytest_module(records, options["pytest"], " ".join(options["file"]))
        if options["diff"]:
            return self.diff(records, *options["diff"])
        selection = replay.Selection(
            connections=set(options["connection"]),
            endpoints=set(options["endpoint"]),
            types=set(options["type"]),
            violations_only=options["violations"],
            names=replay.names_of(records),
        )
        if options["html"]:
            return self.write_html(lines, selection, options["html"], options["file"])
        if options["svg"]:
            return self.write_svg(lines, selection, options, loaded.skipped)
        self.show(lines, selection, options["mode"], loaded.skipped)

    def write_svg(self, lines, selection, options, skipped):
        """The lines as the console shows them, drawn by Rich as an SVG picture (the README's is one)."""
        out, terminal = options["svg"], self.console
        self.console = console(io.StringIO(), options["width"] or SVG_WIDTH, record=True, force_terminal=True)
        try:
            self.show(lines, selection, options["mode"], skipped, fitted=True)
            picture = self.console
        finally:
            self.console = terminal
        try:
            picture.save_svg(out, title=" ".join(Path(name).name for name in options["file"]))
        except OSError as error:
            raise CommandError(f"cannot write {out}: {error.strerror}") from None
        self.console.print(Text(f"wrote {out}"))

    def write_html(self, lines, selection, out, sources):
        # Drop counts stay in: the page says records were lost where they were.
        kept = [r for r in lines if (r.get("dropped") if r["kind"] == "message" else selection.admits(r))]
        if selection.filters() and not entries(kept):
            raise CommandError("no record passes the filters")
        try:
            size = export.write(out, kept, sources)
        except OSError as error:
            raise CommandError(f"cannot write {out}: {error.strerror}") from None
        except export.MissingPageError as error:
            raise CommandError(str(error)) from None
        self.console.print(
            Text(f"wrote {out}: {plural(len(entries(kept)), 'record')}, {size:,} bytes"), soft_wrap=True
        )

    def read(self, paths):
        """Every recording named, read and validated: several are labelled by their file's name."""
        labels = [Path(path).stem if path != "-" else "stdin" for path in paths]
        if len(set(labels)) < len(labels):
            labels = [f"{label}{index}" for index, label in enumerate(labels, 1)]
        sources = []
        with contextlib.ExitStack() as files:
            for path, label in zip(paths, labels, strict=True):
                try:
                    file = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                except OSError as error:
                    raise CommandError(f"cannot read {path}: {error.strerror}") from None
                files.enter_context(file)
                sources.append((label if len(paths) > 1 else "", list(file)))
        return replay.load(sources)

    def list_runs(self, loaded):
        table = Table(title="Runs in the recording", title_justify="left")
        for column in ("run", "pid", "started", "command", "connections"):
            table.add_column(column)
        for run in loaded.runs:
            name = f"{run['label']}:{run['run']}" if run["label"] else str(run["run"])
            connections = {
                r["connection"] for r in loaded.entries if r.get("run") == run["run"] and r["connection"]
            }
            table.add_row(name, str(run["pid"]), run["started"], run["command"], f"{len(connections):,}")
        self.console.print(table)

    def show(self, lines, selection, mode, skipped, fitted=False):
        """The lines as the console showed them; ``fitted`` to this console's width as a terminal's are
        (a picture's), with no summary. Otherwise each event's line is whole: a terminal wraps it."""
        printer = RichTraceHandler(self.console)
        shown = Counter()
        for record in lines:
            if record.get("dropped"):
                printer.print(dropped(record["dropped"]))
            if record["kind"] == "message":
                if record["text"]:
                    printer.print(Text(record["text"]))
                continue
            if not selection.admits(record):
                continue
            entry = recording.from_record(record, mode, self.clock)
            failure = Failure(record["traceback"]) if record.get("traceback") else None
            width = self.console.width if fitted else None
            for renderable in render(entry, failure, width):  # a recorded Failure has only its text
                printer.print(renderable)
            shown["records"] += 1
            shown["violations"] += len(entry.violations)
        printer.flush()
        records = entries(lines)
        if selection.filters() and not shown["records"] and records:
            known = ", ".join(sorted({r["connection"] for r in records if r["connection"]})[:20])
            raise CommandError(f"no record passes the filters; the recording has {known or 'no connections'}")
        if fitted:
            return
        connections = {r["connection"] for r in records if r["connection"] and selection.admits(r)}
        counts = [
            f"{shown['records']:,} of {plural(len(records), 'record')}",
            plural(len(connections), "connection"),
            plural(shown["violations"], "ASGI rule violation"),
        ]
        summary = " · ".join(counts)
        if skipped:
            reasons = ", ".join(f"{count:,} {reason}" for reason, count in skipped.most_common(3))
            summary += f" · {plural(sum(skipped.values()), 'line')} skipped: {reasons}"
        self.console.print(Text(summary, style="bold"), soft_wrap=True)

    def pytest_module(self, records, name, source):
        picked = replay.of_connection(records, name)
        connections = {r.get("connection") for r in picked}
        if len(connections) > 1:
            listed = ", ".join(sorted(connections))
            raise CommandError(f"{printable(name)} names {len(connections)} connections: {listed}")
        try:
            text = regression.module(picked, connections.pop() if connections else name, source)
        except regression.NotReplayableError as error:
            raise CommandError(f"cannot replay {printable(name)}: {error}") from None
        self.stdout.write(text, ending="")

    def diff(self, records, name_a, name_b):
        picked = {name: replay.of_connection(records, name) for name in (name_a, name_b)}
        for name, found in picked.items():
            if not found:
                known = sorted({str(r["connection"]) for r in records if r.get("connection")})
                raise CommandError(
                    f"no connection {printable(name)} in the recording; it has {', '.join(known) or 'none'}"
                )
        table, summary = replay.diff(picked[name_a], picked[name_b], name_a, name_b)
        self.console.print(table)
        self.console.print(Text(summary, style="bold"), soft_wrap=True)
