"""``python manage.py trace FILE``: render a recorded trace, filter it, or diff two connections."""

import os
import sys
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.text import Text

from explorer.trace import recording, regression, replay
from explorer.trace.display import printable
from explorer.trace.handlers import RichTraceHandler
from explorer.trace.render import dropped, render


def entries(lines):
    """The trace entries among a recording's lines (not its drop counts or messages)."""
    return [line for line in lines if line["kind"] != "message"]


def plural(count, noun):
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Render a JSON Lines trace recorded with EXPLORER_TRACE_FILE: all of it, the records that pass "
        "the filters, or (--diff A B) two connections' events lined up side by side."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the recording; - reads standard input")
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
            help="only this event type (websocket.receive, or receive) or kind (scope, in, out, error); "
            "repeatable",
        )
        parser.add_argument("--violations", action="store_true", help="only records that broke an ASGI rule")
        parser.add_argument("--mode", choices=["compact", "full"], default="compact")
        parser.add_argument("--diff", nargs=2, metavar=("A", "B"), help="line up connections A and B")
        parser.add_argument(
            "--pytest",
            metavar="CONNECTION",
            help="write a pytest module that replays this connection's client side and expects "
            "the same events back",
        )
        parser.add_argument("--width", type=int, help="console width (default: the terminal's)")

    def handle(self, *args, **options):
        try:
            self.run(options)
        except BrokenPipeError:
            # The reader went away (| head): stop quietly, like other Unix tools.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def run(self, options):
        self.console = Console(
            file=self.stdout._out, markup=False, emoji=False, highlight=False, width=options["width"]
        )
        lines, skipped = self.read(options["file"])
        records = entries(lines)
        if options["pytest"]:
            return self.pytest_module(records, options["pytest"], options["file"])
        if options["diff"]:
            return self.diff(records, *options["diff"])
        selection = replay.Selection(
            connections=set(options["connection"]),
            endpoints=set(options["endpoint"]),
            types=set(options["type"]),
            violations_only=options["violations"],
            names=replay.names_of(records),
        )
        self.show(lines, selection, options["mode"], skipped)

    def read(self, path):
        """The recording's records (validated), its other lines, and why each skipped line was skipped."""
        try:
            file = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as error:
            raise CommandError(f"cannot read {path}: {error.strerror}") from None
        with file:
            lines, skipped = [], Counter()
            for _number, record, problem in recording.read(file):
                if record is None:
                    skipped[problem] += 1
                else:
                    lines.append(record)
        return lines, skipped

    def show(self, lines, selection, mode, skipped):
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
            entry = recording.from_record(record, mode)
            for renderable in render(entry):
                printer.print(renderable)
            if record.get("traceback"):
                printer.print(Text(printable(record["traceback"], keep_newlines=True), style="red"))
            shown["records"] += 1
            shown["violations"] += len(entry.violations)
        printer.flush()
        records = entries(lines)
        if selection.filters() and not shown["records"] and records:
            known = ", ".join(sorted({r["connection"] for r in records if r["connection"]})[:20])
            raise CommandError(f"no record passes the filters; the recording has {known or 'no connections'}")
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
        names = replay.names_of(records)
        picked = [r for r in records if replay.Selection(connections={name}, names=names).admits(r)]
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
        names = replay.names_of(records)
        picked = {
            name: [r for r in records if replay.Selection(connections={name}, names=names).admits(r)]
            for name in (name_a, name_b)
        }
        for name, found in picked.items():
            if not found:
                known = sorted({str(r.get("connection")) for r in records})
                raise CommandError(
                    f"no connection {printable(name)} in the recording; it has {', '.join(known) or 'none'}"
                )
        table, summary = replay.diff(picked[name_a], picked[name_b], name_a, name_b)
        self.console.print(table)
        self.console.print(Text(summary, style="bold"), soft_wrap=True)
