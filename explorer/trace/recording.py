"""Trace entries as JSON Lines, and back: the format of a recording, which ``handlers`` writes.

A record holds the event as the console shows it: shortened and with
credentials redacted (``display``), so a recording is as safe to share as a
screenshot of the console. Values JSON has no type for are tagged objects:
``{"$bytes": latin-1 text}``, ``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}``
(for keys that are not plain strings), ``{"$redacted": true}``,
``{"$shortened": head, "length": n}`` and ``{"$repr": text}``.

Every line is checked when it is read back (``validated``): a recording is
a file anyone could have written.
"""

import contextlib
import datetime
import functools
import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from explorer.trace.config import TraceConfig
from explorer.trace.display import REDACTED, Opaque, Redacted, Shortened, printable
from explorer.trace.entry import KINDS, OUTCOMES, TraceEntry, Violation
from explorer.trace.render import shown_body
from explorer.trace.tracebacks import failure_of

MAX_DEPTH = 64  # a recorded value nested deeper is shown as such, not followed


def encode(value):
    """A shown value as JSON-ready data, tagging what JSON cannot say."""
    if isinstance(value, str) or value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, bytes):
        return {"$bytes": value.decode("latin-1")}
    if isinstance(value, tuple):
        return {"$tuple": [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: encode(item) for key, item in value.items()}
        return {"$dict": [[encode(key), encode(item)] for key, item in value.items()]}
    if isinstance(value, Redacted):
        return {"$redacted": True}
    if isinstance(value, Shortened):
        return {"$shortened": encode(value.head), "length": value.length}
    return {"$repr": repr(value)}  # Opaque, and anything else


def decode(value, depth=0):
    """The inverse of ``encode``: shown values, markers included, however odd the file."""
    if depth > MAX_DEPTH:
        return Opaque("<nested too deep>")
    if isinstance(value, list):
        return [decode(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 or (len(value) == 2 and "$shortened" in value):
        tag = next(iter(value))
        inner = value[tag]
        if tag == "$bytes" and isinstance(inner, str):
            return inner.encode("latin-1", "replace")
        if tag == "$tuple" and isinstance(inner, list):
            return tuple(decode(item, depth + 1) for item in inner)
        if tag == "$dict" and isinstance(inner, list):
            pairs = [pair for pair in inner if isinstance(pair, list) and len(pair) == 2]
            return {hashable(decode(key, depth + 1)): decode(item, depth + 1) for key, item in pairs}
        if tag == "$redacted":
            return REDACTED
        if tag == "$repr" and isinstance(inner, str):
            return Opaque(printable(inner))  # what a file says is shown as it is: escaped
        if "$shortened" in value and isinstance(value.get("length"), int):
            head = value["$shortened"]
            if isinstance(head, (str, dict)) and not isinstance(value["length"], bool):
                head = decode(head, depth + 1)
                if isinstance(head, (str, bytes)):
                    return Shortened(head, value["length"])
    return {key: decode(item, depth + 1) for key, item in value.items()}


def hashable(key):
    try:
        hash(key)
    except TypeError:
        return Opaque(repr(key))
    return key


def iso(moment):
    """``moment`` (``time.time()``) in ISO 8601, UTC, to the microsecond: as ``datetime`` writes it,
    rounding half to even, with the second's part made once per second (it was a tenth of a line's
    work, and every record has one)."""
    second = math.floor(moment)
    micro = round((moment - second) * 1e6)
    if micro >= 1_000_000:  # rounded up into the next second
        second, micro = second + 1, micro - 1_000_000
    return f"{whole_second(second)}.{micro:06d}+00:00"


@functools.lru_cache(maxsize=4)
def whole_second(second):
    return datetime.datetime.fromtimestamp(second, datetime.UTC).replace(tzinfo=None).isoformat()


def as_record(entry, shown_event, failure=None):
    """One trace entry as a JSON-ready dict; ``at`` is the moment of ``seconds`` on the wall clock."""
    record = {
        "at": iso(entry.at) if entry.at else None,
        "connection": entry.connection,
        "endpoint": entry.endpoint,
        "kind": entry.kind,
        "seconds": round(entry.seconds, 6),
        "event": encode(shown_event),
    }
    for key in ("thread", "note", "wait", "handler", "took", "consumer", "outcome"):
        value = getattr(entry, key)
        if value is not None:
            record[key] = round(value, 6) if isinstance(value, float) else value
    if entry.slow:
        record["slow"] = True
    if entry.queries:
        record["queries"] = [entry.queries[0], round(entry.queries[1], 6)]
    for key in ("held_by", "on_loop", "held_loop"):  # what the page's timeline links and marks
        value = getattr(entry, key)
        if value is not None:
            record[key] = list(value) if isinstance(value, tuple) else value
    if entry.violations:
        record["violations"] = [
            {"rule": v.rule, "problem": v.problem, "hint": v.hint} for v in entry.violations
        ]
    if entry.notes:
        record["notes"] = list(entry.notes)
    if failure:
        record["traceback"] = failure.text
    return record


def entry_record(entry, failure=None):
    """A trace entry as a JSON-ready dict, its event as the trace shows it."""
    return as_record(entry, shown_body(entry), failure)


def record_of(log_record):
    """A logging record of the trace's as a JSON-ready dict, for the recording and the page's panel:
    its entry, a message, or only a drop count (``{"dropped": N}``); {} when it holds none of these."""
    entry = getattr(log_record, "trace", None)
    if entry is not None:
        data = entry_record(entry, failure_of(log_record))
    elif log_record.msg:
        data = {"kind": "message", "text": log_record.getMessage()}
    else:
        data = {}
    if getattr(log_record, "trace_dropped", 0):
        data["dropped"] = log_record.trace_dropped
    return data


def written_so_far(path):
    """The records of a recording that a server may still be appending to, as dicts.

    One read to the end: a half-written last line is left for the next look
    (reading on line by line would start a line with that one's rest).
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace") if os.path.isfile(path) else ""
    return [json.loads(line) for line in text.split("\n")[:-1] if line]


def run_header(number, origin=None):
    """The record a run begins with: the traced process, when its trace started, the stack's versions.

    ``origin`` (pid, command, started) names the traced process when the
    recording is written by another (``renderer``). The server is not known
    until a connection comes: its ``server`` record follows then.
    """
    from explorer.trace.connection import TRACE_STARTED

    origin = origin or {}
    versions = {}
    for name in ("django", "channels", "asgiref", "rich"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "kind": "run",
        "run": number,
        "pid": origin.get("pid", os.getpid()),
        "command": origin.get("command", " ".join(sys.argv)[:500]),
        "started": iso(origin.get("started", TRACE_STARTED)),
        "python": platform.python_version(),
        "versions": versions,
    }


def last_run(path):
    """The header of the last run recorded in ``path`` (None for none): only run headers are parsed."""
    last = None
    if not os.path.isfile(path):  # a pipe, /dev/full...: nothing to number after
        return last
    with contextlib.suppress(OSError), open(path, "rb") as file:
        for line in file:
            if b'"kind": "run"' in line[:200]:
                with contextlib.suppress(ValueError, AttributeError):
                    header = json.loads(line)
                    number = header.get("run")
                    if is_whole(number) and (last is None or number > last["run"]):
                        last = header
    return last


MAX_LINE = 1024 * 1024  # characters a recorded line may have: one record, never a whole file


class NotARecordError(ValueError):
    """A line of a recording that is not a trace record: its text says why, briefly."""


def checked_field(record, key, required, fits, what):
    """``record[key]``, or None where it may be left out; NotARecordError if it is missing or does not fit."""
    value = record.get(key)
    if value is None and not required:
        return None
    if value is None:
        raise NotARecordError(f"{key} is missing")
    if not fits(value):
        raise NotARecordError(f"{key} is {type(value).__name__}, not {what}")
    return value


def text_field(record, key, required=False):
    value = checked_field(record, key, required, lambda value: isinstance(value, str), "text")
    return None if value is None else printable(value)


def is_number(value):
    """A finite int or float: not NaN, not Infinity; JSON's true and false are not numbers here."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def is_duration(value):
    return is_number(value) and value >= 0


def is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def validated(record):
    """A recorded dict checked field by field, every text made printable; NotARecordError if it is not one.

    A recording is a file anyone can write: nothing in it is trusted to be
    of the shape the trace wrote, nor free of escape sequences.
    """
    if not isinstance(record, dict):
        raise NotARecordError(f"a {type(record).__name__}, not an object")
    run = record.get("run")
    if run is not None and not (is_whole(run) and run >= 1):
        raise NotARecordError("run is not a number")
    if record.get("kind") == "run":
        return run_record(record)
    kind = text_field(record, "kind", required=True)
    if kind not in KINDS:
        raise NotARecordError(f"kind {kind[:20]!r} is not one the trace writes")
    clean = {
        "run": run,
        "connection": text_field(record, "connection", required=True),
        "kind": kind,
        "seconds": float(checked_field(record, "seconds", True, is_number, "a number")),
        "event": record.get("event"),
    }
    for key in ("thread", "note", "consumer", "endpoint", "at", "traceback"):
        clean[key] = text_field(record, key)
    if record.get("outcome") is not None:
        if record["outcome"] not in OUTCOMES:
            raise NotARecordError("outcome is not raised or cancelled")
        clean["outcome"] = record["outcome"]
    for key in ("wait", "handler", "took"):
        clean[key] = checked_field(record, key, False, is_duration, "a duration (seconds, 0 or more)")
    queries = record.get("queries")
    if queries is not None:
        count, seconds = queries if isinstance(queries, list) and len(queries) == 2 else (None, None)
        if not (is_whole(count) and count >= 0 and is_duration(seconds)):
            raise NotARecordError("queries is not a count and a time")
        clean["queries"] = [count, float(seconds)]
    clean["slow"] = record.get("slow") is True
    clean.update(timeline_fields(record))
    notes = record.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise NotARecordError("notes are not a list of texts")
    clean["notes"] = [printable(note) for note in notes]
    violations = record.get("violations", [])
    if not isinstance(violations, list):
        raise NotARecordError("violations are not a list")
    clean["violations"] = []
    for violation in violations:
        if not isinstance(violation, dict):
            raise NotARecordError("a violation is not an object")
        fields = ("rule", "problem", "hint")
        clean["violations"].append({key: text_field(violation, key, key != "hint") or "" for key in fields})
    if record.get("dropped") is not None:
        clean["dropped"] = count_of_dropped(record)
    return {key: value for key, value in clean.items() if value is not None}


def timeline_fields(record):
    """``held_by``, ``on_loop`` and ``held_loop``, checked: what the page's timeline draws links from."""
    clean = {}
    held_by = record.get("held_by")
    if held_by is not None:
        if not isinstance(held_by, list) or not all(isinstance(name, str) for name in held_by):
            raise NotARecordError("held_by is not a list of texts")
        clean["held_by"] = [printable(name) for name in held_by]
    if record.get("on_loop") is not None:
        if not isinstance(record["on_loop"], bool):
            raise NotARecordError("on_loop is not true or false")
        clean["on_loop"] = record["on_loop"]
    held_loop = record.get("held_loop")
    if held_loop is not None:
        if not (
            isinstance(held_loop, list)
            and len(held_loop) == 2
            and all(is_number(value) for value in held_loop)
        ):
            raise NotARecordError("held_loop is not a start and a length")
        clean["held_loop"] = [float(value) for value in held_loop]
    return clean


def run_record(record):
    """A run's header, checked: a number, and texts made printable."""
    if not isinstance(record.get("run"), int):
        raise NotARecordError("a run header without a number")
    clean = {"kind": "run", "run": record["run"]}
    for key in ("command", "started", "python"):
        clean[key] = text_field(record, key) or ""
    pid = record.get("pid")
    clean["pid"] = pid if is_whole(pid) else None
    versions = record.get("versions") if isinstance(record.get("versions"), dict) else {}
    clean["versions"] = {printable(str(k)): printable(str(v)) for k, v in versions.items()}
    return clean


def moment(text):
    """An ``at`` or ``started`` text back on the wall clock, or None."""
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def other_line(record):
    """A line of the writer's that is no entry: ``{"dropped": N}``, or a message on the trace's logger."""
    return {"kind": "message", "text": text_field(record, "text") or "", "dropped": count_of_dropped(record)}


def count_of_dropped(record):
    dropped = record.get("dropped", 0)
    if not (is_whole(dropped) and dropped >= 0):
        raise NotARecordError("dropped is not a count")
    return dropped


def from_record(record, mode="compact", clock="connection"):
    """A trace entry from a validated record (``validated``), ready to render.

    ``record["started"]``, where the reader put it, is its run's start: the process clock's zero.
    """
    return TraceEntry(
        connection=record["connection"],
        kind=record["kind"],
        seconds=record["seconds"],
        at=moment(record.get("at")) or 0.0,
        started=record.get("started") or 0.0,
        event=decode(record.get("event")),
        config=TraceConfig(mode=mode, max_payload=10**9, show_credentials=True, clock=clock),
        thread=record.get("thread"),
        note=record.get("note"),
        wait=record.get("wait"),
        handler=record.get("handler"),
        took=record.get("took"),
        queries=tuple(record["queries"]) if record.get("queries") else None,
        consumer=record.get("consumer"),
        held_by=tuple(record["held_by"]) if record.get("held_by") else None,
        on_loop=record.get("on_loop"),
        held_loop=tuple(record["held_loop"]) if record.get("held_loop") else None,
        outcome=record.get("outcome"),
        slow=record.get("slow", False),
        violations=tuple(Violation(v["rule"], v["problem"], v["hint"]) for v in record.get("violations", ())),
        notes=tuple(record.get("notes", ())),
        recorded=True,
    )


def read(lines):
    """(line number, validated record or None, why not) for each line of a recording."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            yield number, None, f"over {MAX_LINE:,} characters"
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            yield number, None, "not JSON"
            continue
        try:
            if (
                isinstance(record, dict)
                and record.get("kind", "message") == "message"
                and "connection" not in record
            ):
                yield number, other_line(record), None  # the writer's own: a drop count, or a plain message
                continue
            yield number, validated(record), None
        except NotARecordError as error:
            yield number, None, str(error)
