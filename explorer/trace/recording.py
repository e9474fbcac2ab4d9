"""Trace entries as JSON Lines, and back, for ``EXPLORER_TRACE["FILE"]`` and ``manage.py trace``.

A record holds the event as the console shows it: shortened and with
credentials redacted (``display``), so a recording is as safe to share as a
screenshot of the console. Values JSON has no type for are tagged objects:
``{"$bytes": latin-1 text}``, ``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}``
(for keys that are not plain strings), ``{"$redacted": true}``,
``{"$shortened": head, "length": n}`` and ``{"$repr": text}``.

``JsonLinesTraceHandler`` writes one line per record and flushes it, so a
server that is killed leaves a file of whole lines.
"""

import datetime
import json
import logging
import traceback

from explorer.trace.config import TraceConfig
from explorer.trace.display import REDACTED, Opaque, Redacted, Shortened
from explorer.trace.entry import TraceEntry, Violation
from explorer.trace.render import shown

TAGS = ("$bytes", "$tuple", "$dict", "$redacted", "$shortened", "$repr")


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


def decode(value):
    """The inverse of ``encode``: shown values, markers included."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 or (len(value) == 2 and "$shortened" in value):
        tag = next(iter(value))
        inner = value[tag]
        if tag == "$bytes" and isinstance(inner, str):
            return inner.encode("latin-1", "replace")
        if tag == "$tuple" and isinstance(inner, list):
            return tuple(decode(item) for item in inner)
        if tag == "$dict" and isinstance(inner, list):
            return {hashable(decode(pair[0])): decode(pair[1]) for pair in inner if len(pair) == 2}
        if tag == "$redacted":
            return REDACTED
        if tag == "$repr" and isinstance(inner, str):
            return Opaque(inner)
        if "$shortened" in value and isinstance(value.get("length"), int):
            return Shortened(decode(value["$shortened"]), value["length"])
    return {key: decode(item) for key, item in value.items()}


def hashable(key):
    try:
        hash(key)
    except TypeError:
        return Opaque(repr(key))
    return key


def as_record(entry, shown_event, created=None, exc_info=None):
    """One trace entry as a JSON-ready dict."""
    record = {
        "at": datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat() if created else None,
        "connection": entry.connection,
        "endpoint": entry.endpoint,
        "kind": entry.kind,
        "seconds": round(entry.seconds, 6),
        "event": encode(shown_event),
    }
    for key in ("thread", "note", "wait", "handler", "consumer"):
        value = getattr(entry, key)
        if value is not None:
            record[key] = round(value, 6) if isinstance(value, float) else value
    if entry.slow:
        record["slow"] = True
    if entry.violations:
        record["violations"] = [
            {"rule": v.rule, "problem": v.problem, "hint": v.hint} for v in entry.violations
        ]
    if entry.notes:
        record["notes"] = list(entry.notes)
    if exc_info:
        record["traceback"] = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    return record


def from_record(record, mode="compact"):
    """A trace entry from a recorded dict, ready to render; raises ValueError if it is not one."""
    try:
        return TraceEntry(
            connection=str(record["connection"]),
            kind=str(record["kind"]),
            seconds=float(record["seconds"]),
            event=decode(record.get("event")),
            config=TraceConfig(mode=mode, max_payload=10**9, show_credentials=True),
            thread=record.get("thread"),
            note=record.get("note"),
            wait=record.get("wait"),
            handler=record.get("handler"),
            consumer=record.get("consumer"),
            slow=bool(record.get("slow")),
            violations=tuple(
                Violation(str(violation["rule"]), str(violation["problem"]), str(violation.get("hint", "")))
                for violation in record.get("violations", ())
            ),
            notes=tuple(map(str, record.get("notes", ()))),
            recorded=True,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"not a trace record ({type(error).__name__}: {error})") from None


def read(lines):
    """(line number, record or None) for each line of a recording; None for one that is not a record."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            yield number, None
            continue
        yield number, record if isinstance(record, dict) and "connection" in record else None


class JsonLinesTraceHandler(logging.FileHandler):
    """Appends each trace record to a file as one JSON line. Runs on the listener thread.

    The file is unbuffered and each line goes out in one ``write`` call, so a
    reader (or a server killed at any moment) never sees a line cut short
    by a buffer boundary.
    """

    def __init__(self, filename):
        super().__init__(filename, mode="ab")

    def _open(self):
        return open(self.baseFilename, self.mode, buffering=0)

    def format(self, record):
        entry = getattr(record, "trace", None)
        if entry is None:
            data = {"kind": "message", "text": record.getMessage()} if record.msg else {}
        else:
            data = as_record(entry, shown(entry), record.created, record.exc_info)
        if getattr(record, "trace_dropped", 0):
            data["dropped"] = record.trace_dropped
        return json.dumps(data, ensure_ascii=False) if data else ""

    def emit(self, record):
        try:
            line = self.format(record)
            if line:
                if self.stream is None:  # closed by a logging reconfiguration: open it again
                    self.stream = self._open()
                data = memoryview((line + "\n").encode("utf-8", "surrogatepass"))
                while data:
                    data = data[self.stream.write(data) :]
        except Exception:
            self.handleError(record)
