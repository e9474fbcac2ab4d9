"""Reading a recorded trace back: filters, and lining up two connections side by side.

Used by ``python manage.py trace``. Records come from ``recording.read``;
entries are rebuilt with ``recording.from_record`` and rendered with the
same code as the live console.
"""

import difflib
import json
from collections import Counter
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

from explorer.trace.display import printable
from explorer.trace.entry import duration
from explorer.trace.layer import LAYER_CALLS
from explorer.trace.recording import encode, from_record, moment, read
from explorer.trace.render import DIM, KINDS, UNKNOWN_KIND, shown_body, shown_type, styled
from explorer.trace.rules import event_type_of

# What a diff compares: the protocol's events and how the consumer ended,
# not the scope (its path and client port always differ) nor timings.
COMPARED_KINDS = ("in", "out", "layer", "error", "exit")


@dataclass
class Loaded:
    """One or more recordings read back: their lines in order, their runs, and what was skipped."""

    lines: list = field(default_factory=list)  # entries (with "started") and the writer's messages
    runs: list = field(default_factory=list)  # run headers, each with its "label"
    skipped: Counter = field(default_factory=Counter)

    @property
    def entries(self):
        return entries(self.lines)


def entries(lines):
    """The trace entries among a recording's lines (not its drop counts or messages)."""
    return [line for line in lines if line["kind"] != "message"]


def load(sources):
    """Read ``sources``, (label, lines) pairs: several files are several processes, merged by time.

    A connection's name is unique in what is shown: prefixed by its file's label when there are
    several files, and by its run's number when a file holds several runs (``2:sc#1``,
    ``a:2:sc#1``). Each entry gets its run's start, the process clock's zero.
    """
    loaded = Loaded()
    for label, lines in sources:
        headers, mine = {}, []
        for _number, record, problem in read(lines):
            if record is None:
                loaded.skipped[problem] += 1
            elif record["kind"] == "run":
                headers[record["run"]] = record
                loaded.runs.append({**record, "label": label})
            else:
                mine.append(record)
        several = len({record.get("run") for record in mine if record["kind"] != "message"}) > 1
        for record in mine:
            if record["kind"] == "message":
                continue
            header = headers.get(record.get("run"))
            record["started"] = moment(header["started"]) if header else None
            prefix = (f"{label}:" if label else "") + (f"{record.get('run')}:" if several else "")
            if prefix and record["connection"]:
                record["connection"] = prefix + record["connection"]
                if record.get("held_by"):  # the same process's connections
                    record["held_by"] = [prefix + name for name in record["held_by"]]
        loaded.lines += mine
    if len(sources) > 1:  # processes side by side: one timeline
        loaded.lines.sort(key=lambda line: moment(line.get("at")) or 0.0)
    followed(loaded.entries)
    return loaded


def followed(records):
    """A message a consumer got from the channel layer, traced back to the group_send that sent it:
    which connection, and the hop's latency, across processes too."""
    sent = {}
    for record in records:
        event = record.get("event")
        if record["kind"] != "layer" or not isinstance(event, dict):
            continue
        if event.get("type") == "group_send" and isinstance(event.get("message"), dict):
            sent.setdefault(json.dumps(event["message"], sort_keys=True), []).append(record)
        elif event.get("type") not in LAYER_CALLS:
            message = {key: value for key, value in event.items() if key != "channel"}
            senders = sent.get(json.dumps(message, sort_keys=True), [])
            arrived = moment(record.get("at"))
            if senders and arrived is not None and moment(senders[-1].get("at")) is not None:
                sender = senders[-1]
                latency = max(0.0, arrived - moment(sender["at"]))
                record["notes"] = [
                    *record.get("notes", []),
                    f"sent by {sender['connection']}'s group_send {duration(latency)} earlier",
                ]


def names_of(records):
    """Every name each connection goes by, from its scope record: what ``-c`` and ``-e`` match.

    A connection ``ChatConsumer#3`` of ``chat.consumers.ChatConsumer`` at
    ``/ws/chat/lobby/`` answers to ``ChatConsumer#3``, ``/ws/chat/lobby/#3``,
    ``#3`` and ``3`` as a connection, and to ``ChatConsumer``,
    ``chat.consumers.ChatConsumer`` and ``/ws/chat/lobby/`` as an endpoint.
    """
    names = {}
    for record in records:
        connection = record.get("connection")
        if not isinstance(connection, str) or connection in names:
            continue
        label, _, number = connection.rpartition("#")
        connections, endpoints = {connection, f"#{number}", number}, {label}
        if record.get("kind") == "scope":
            event = record.get("event") if isinstance(record.get("event"), dict) else {}
            consumer, path = record.get("consumer"), event.get("path")
            if isinstance(path, str):
                connections.add(f"{path}#{number}")
                endpoints.add(path)
            if isinstance(consumer, str):
                endpoints |= {consumer, consumer.rpartition(".")[2]}
                connections.add(f"{consumer.rpartition('.')[2]}#{number}")
        names[connection] = (connections, endpoints)
    return names


@dataclass
class Selection:
    """Which records to show; an empty set lets everything through."""

    connections: set = field(default_factory=set)
    endpoints: set = field(default_factory=set)  # a name, consumer class (dotted or not) or path
    types: set = field(default_factory=set)  # event types or kinds: websocket.receive, receive, scope, error
    violations_only: bool = False
    names: dict = field(default_factory=dict)  # connection -> (its connection names, its endpoint names)

    def filters(self):
        return bool(self.connections or self.endpoints or self.types or self.violations_only)

    def admits(self, record):
        connections, endpoints = self.names.get(record.get("connection"), ((), ()))
        if self.connections and not (self.connections & {record.get("connection"), *connections}):
            return False
        if self.endpoints and not (self.endpoints & {record.get("endpoint"), *endpoints}):
            return False
        if self.violations_only and not record.get("violations"):
            return False
        if self.types:
            event_type = event_type_of(record.get("event"))
            names = {record.get("kind"), event_type}
            if event_type is not None:
                names.add(event_type.removeprefix("websocket."))
            return bool(names & self.types)
        return True


def of_connection(records, name):
    """The records of the connection ``name`` (any name ``-c`` takes) answers to."""
    selection = Selection(connections={name}, names=names_of(records))
    return [record for record in records if selection.admits(record)]


def comparable(entry):
    """What must match for two entries to count as the same step of a session."""
    rules = tuple(violation.rule for violation in entry.violations)
    if entry.kind in ("error", "exit"):
        # "consumer raised X; ..." or "consumer returned; ...": compare the outcome.
        return (entry.kind, str(entry.note or "").split(";")[0], rules)
    return (entry.kind, json.dumps(encode(entry.event), sort_keys=True), rules)


def steps(records):
    """The records' entries that a diff compares, each ``in`` given the handler time of the ``done``
    that follows it (the caller's records stay as they were)."""
    entries, pending = [from_record(record) for record in records], {}
    for entry in entries:
        if entry.kind == "in":
            pending[entry.connection] = entry
        elif entry.kind == "done" and entry.connection in pending:
            pending.pop(entry.connection).handler = entry.handler
    return [entry for entry in entries if entry.kind in COMPARED_KINDS]


def step(entry):
    """One entry as a diff cell: arrow, kind, event type and body, then thread and timings."""
    arrow, style = KINDS.get(entry.kind, UNKNOWN_KIND)
    parts = [(f"{arrow} {entry.kind:<5} ", style)]
    if entry.kind in ("in", "out", "layer"):
        body = shown_body(entry)
        parts.append((shown_type(body), style))
        if isinstance(body, dict):
            body = {key: value for key, value in body.items() if key != "type"}
        if body:
            parts.append((f" {body!r}", None))
    elif entry.note:
        parts.append((printable(entry.note.split(";")[0]), style))
    details = [printable(entry.thread)] if entry.thread else []
    if entry.wait is not None:
        details.append(f"wait {duration(entry.wait)}")
    if entry.handler is not None and entry.kind == "in":
        details.append(f"handler {duration(entry.handler)}")
    details += [violation.rule for violation in entry.violations]
    if details:
        parts.append(("\n" + " · ".join(details), DIM))
    return styled(parts)


def diff(records_a, records_b, name_a, name_b):
    """A table lining up two connections' steps, and a one-line count of what differs."""
    steps_a, steps_b = steps(records_a), steps(records_b)
    matcher = difflib.SequenceMatcher(
        a=[comparable(r) for r in steps_a], b=[comparable(r) for r in steps_b], autojunk=False
    )
    table = Table(show_lines=False, expand=True, title=f"{name_a} ↔ {name_b}")
    table.add_column("", width=1)
    table.add_column(name_a, ratio=1, overflow="fold")
    table.add_column(name_b, ratio=1, overflow="fold")
    counts = {"=": 0, "≠": 0, "−": 0, "+": 0}
    marks = {
        "equal": ("=", "dim"),
        "replace": ("≠", "bold yellow"),
        "delete": ("−", "red"),
        "insert": ("+", "green"),
    }
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        mark, style = marks[tag]
        left, right = steps_a[a_start:a_end], steps_b[b_start:b_end]
        for index in range(max(len(left), len(right))):
            cells = [step(side[index]) if index < len(side) else Text("") for side in (left, right)]
            table.add_row(Text(mark, style=style), *cells, style=None if tag == "equal" else style)
            counts[mark] += 1
    summary = (
        f"{name_a} ↔ {name_b}: {counts['=']} alike, {counts['≠']} different, "
        f"{counts['−']} only in {name_a}, {counts['+']} only in {name_b}"
    )
    return table, summary
