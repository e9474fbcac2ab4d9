"""The console and the recording in a process of their own, fed the trace's records through a pipe.

Making a record readable and writing it out costs a server's process more
than capturing it: a listener thread doing it holds the GIL the event loop
wants (and the loop waits for it at every I/O call it makes meanwhile). So
by default (``EXPLORER_TRACE_RENDERER=process``) the listener only pickles
each batch of records and writes it to this program's stdin; this program,
``python -m explorer.trace.renderer``, renders them on the server's own
stderr, which it inherits, and writes the recording.

A frame on the pipe is a 4-byte length and a pickled list of items: an
entry's values as a tuple, just as the consumer's path queued them (most
items: plain values only, its config by number and a dict event's keys and
values after the fields, ``entry.CONFIGS``), or a list for anything else:
``["record", entry, failure, dropped]``, ``["message", text, dropped]``,
and ``["configs", first, configs]`` before the first entry that names a
config by a number the renderer has not been sent.
The renderer ends at end of input, having written everything. It runs in a
process group of its own, so a terminal's Ctrl-C or a signal to the
server's group reaches the server alone, and ignores SIGINT and SIGTERM
besides: its server still has records to send as it stops. If it cannot be started or dies,
the trace says so once and renders in the server's process again.
"""

import argparse
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading

from explorer.trace.entry import CONFIGS, entry_of, known_configs, only_data
from explorer.trace.render import shown_body
from explorer.trace.tracebacks import failure_of

HEADER = struct.Struct("!I")
MAX_FRAME = 256 * 1024 * 1024  # what a frame may claim to hold; the queue's own bound is far lower
STOP_TIMEOUT = 10  # seconds the server waits for the renderer to write out and end
FRAME_ITEMS = 200  # records in one frame at most
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's; Python has the name from 3.10 on Linux
PIPE_BYTES = 1024 * 1024  # the pipe's size, where the system allows it (Linux's unprivileged maximum)


class RendererProcess(logging.Handler):
    """The server's side: a sink of the listener that ships each batch to the renderer process.

    ``fallback`` makes the in-process sinks, used if the renderer cannot be
    started or has died: the trace goes on either way.
    """

    def __init__(self, file, fallback):
        super().__init__()
        self.file = file
        self.fallback = fallback
        self.local = None  # the in-process sinks, once the renderer has failed
        self.process = None
        self.starting = threading.Lock()  # warm_up (the server's thread) and flush (the listener's)
        self.items = []
        self.configs_sent = 0  # of ``entry.CONFIGS``, how many the renderer process has been sent

    def warm_up(self):
        """Starts the renderer now, before there is anything to render: a server builds its application
        as it starts, and the first connections' lines would otherwise wait for a process to start and
        import (a few hundred ms, on a busy machine more). If it cannot start, the listener's next batch
        tries again and, failing, renders in this process: the fail-over is the listener's alone."""
        with contextlib.suppress(Exception):
            self.started()

    def started(self):
        with self.starting:
            if self.process is None and self.local is None:
                self.process = self.start()
                self.configs_sent = 0  # a new process knows none
            return self.process

    def forked(self):
        """In a child forked from the server's process (gunicorn --preload): the renderer is the
        parent's, and a child writing to the same pipe would cut into its frames; the child starts its
        own at its first record."""
        process, self.process = self.process, None
        if process is not None:
            # The child's copy of the pipe, pointed at /dev/null: what the child's copy of its buffer holds
            # goes nowhere, and the parent's renderer sees the end of its input when the parent closes it.
            with contextlib.suppress(OSError, ValueError):
                nowhere = os.open(os.devnull, os.O_WRONLY)
                os.dup2(nowhere, process.stdin.fileno())
                os.close(nowhere)
            self.parents = process  # kept, not collected: its finalizer writes to /dev/null at exit
        self.starting = threading.Lock()
        self.items = []
        self.configs_sent = 0

    def take(self, batch):
        """The listener's batch as it was queued (``handlers.Batch``): most of it entries, which go out with
        no logging record; all of them as they are when the queue counted nothing else in it."""
        if self.local is None:
            self.items.extend(batch.items if batch.plain else map(item, batch.items))
            return
        from explorer.trace.connection import logging_record

        for record in map(logging_record, batch.items):
            self.handle(record)

    def handle(self, record):  # the listener's thread only: no lock needed
        if self.local is None:
            self.items.append(item(record))
        for sink in self.local or ():
            if record.levelno >= sink.level:
                sink.handle(record)
        return True

    def flush(self):
        if self.local is not None:
            for sink in self.local:
                sink.flush()
            return
        if not self.items:
            return
        items, self.items = self.items, []
        # Frames of a bounded size: a server killed mid-write loses only the frame it was writing.
        for start in range(0, len(items), FRAME_ITEMS):
            frame = items[start : start + FRAME_ITEMS]
            try:
                process = self.process or self.started()
                # The configs numbered since this process was last sent any, first: entries name theirs.
                configs = CONFIGS[self.configs_sent :]
                data = pickled([["configs", self.configs_sent, configs], *frame] if configs else frame)
                process.stdin.write(HEADER.pack(len(data)) + data)
                process.stdin.flush()
            except Exception as error:  # not started, or gone: render here from now on
                self.fail(error, items[start:])
                return
            self.configs_sent += len(configs)

    def start(self):
        from explorer.trace.connection import TRACE_STARTED

        origin = {"pid": os.getpid(), "command": " ".join(sys.argv)[:500], "started": TRACE_STARTED}
        command = [sys.executable, "-m", "explorer.trace.renderer", "--origin", json.dumps(origin)]
        if self.file:
            command += ["--file", str(self.file)]
        # Whatever the server could import, the renderer can: the same path, first.
        path = os.pathsep.join([*filter(None, sys.path), os.environ.get("PYTHONPATH", "")])
        # A process group of its own: a terminal's Ctrl-C and a signal to the server's group reach the
        # server only, even while the renderer is still starting (its own handlers come after its imports).
        # It ends when the server closes the pipe, having written everything out.
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path}, process_group=0
        )
        with contextlib.suppress(OSError):  # room for the records sent while the renderer starts
            fcntl.fcntl(process.stdin.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        return process

    def fail(self, error, items):
        from explorer.trace.handlers import say

        say(
            f"the trace's renderer process failed ({type(error).__name__}: {error}); "
            "the trace is rendered in this process from now on"
        )
        with self.starting:  # no renderer is started meanwhile (warm_up)
            self.stop(wait=False)
            self.local = self.fallback()
        for each in items:
            self.handle(shipped_record(each))
        self.flush()

    def stop(self, wait=True):
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()
        if wait:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()

    def close(self):
        self.flush()
        self.stop()
        for sink in self.local or ():
            sink.close()
        super().close()


def item(record):
    """What the renderer needs of a logging record, or of an entry's values (``connection.deliver``)."""
    if type(record) is tuple:
        if record[1] != "scope" or only_data(record):  # its kind; a scope's values, its event's among them
            # A tuple of plain values, which pickle takes without calling back into Python.
            return record
        entry, failure, dropped = entry_of(record), None, 0
    else:
        dropped = getattr(record, "trace_dropped", 0)
        entry = getattr(record, "trace", None)
        if entry is None:
            return ["message", record.getMessage() if record.msg else "", dropped]
        failure = failure_of(record)
    if entry.kind == "scope" and not entry.recorded:
        # A scope holds the application's objects (a user, a session): shown here, as they are.
        entry = as_shown(entry)
    return ["record", entry, failure, dropped]


def as_shown(entry):
    """The entry with its event as the trace shows it, as a recorded entry holds it."""
    return dataclasses.replace(entry, event=shown_body(entry), recorded=True)


def pickled(items):
    """The batch as one frame; an event that will not pickle (an application's own object in a
    layer message) goes as the trace would show it."""
    try:
        return pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        safe = []
        for each in items:
            kind, *rest = ["record", entry_of(each), None, 0] if type(each) is tuple else each
            if kind == "record" and not rest[0].recorded:
                rest[0] = as_shown(rest[0])
            safe.append([kind, *rest])
        return pickle.dumps(safe, protocol=pickle.HIGHEST_PROTOCOL)


def shipped_record(each):
    """An item of a frame (an entry's fields, or a list naming what it is) as the logging record the sinks
    take."""
    return as_log_record("entry", each) if type(each) is tuple else as_log_record(*each)


def as_log_record(kind, *rest):
    """An item back as the logging record the sinks take."""
    if kind == "entry":
        return ShippedRecord(entry_of(rest[0]))
    if kind == "record":
        return ShippedRecord(*rest)
    record = logging.makeLogRecord({"name": "explorer.trace", "msg": rest[0], "levelno": logging.INFO})
    record.trace_dropped = rest[-1]
    return record


class ShippedRecord(logging.LogRecord):
    """An entry as the renderer's sinks take it: they read its entry, failure and drop count, and a
    logging record's level and message, never the fields a formatter would (no formatter is set here).
    So none are made: a ``TraceRecord``'s two dozen, set on each, were a sixth of the renderer's work."""

    name = "explorer.trace"
    msg = ""
    args = ()
    pathname = __file__  # what LogRecord's repr names
    lineno = 0
    levelno = logging.INFO
    levelname = "INFO"
    exc_info = None

    def __init__(self, entry, failure=None, dropped=0):  # not LogRecord.__init__: nothing else is set
        self.trace = entry
        self.trace_failure = failure
        self.trace_dropped = dropped


def frames(stream):
    """Each batch of items on ``stream``, until it ends."""
    while True:
        header = stream.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        (length,) = HEADER.unpack(header)
        if length > MAX_FRAME:
            raise ValueError(f"a frame of {length:,} bytes")
        data = stream.read(length)
        if len(data) < length:
            return
        yield pickle.loads(data)


def main(argv=None):
    from explorer.trace.handlers import JsonLinesTraceHandler, RichTraceHandler

    parser = argparse.ArgumentParser(
        prog="python -m explorer.trace.renderer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--file", help="the recording to append to")
    parser.add_argument("--origin", default="{}", help="the server process, as JSON: pid, command, started")
    options = parser.parse_args(argv)
    # SIGTTOU too: in a process group of its own, it is a background job to a terminal with tostop set.
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGTTOU):
        signal.signal(stop, signal.SIG_IGN)
    sinks = [RichTraceHandler()]
    if options.file:  # first: a slow or closed console never holds the recording back
        sinks.insert(0, JsonLinesTraceHandler(options.file, origin=json.loads(options.origin)))
    try:
        render_frames(frames(sys.stdin.buffer), sinks)
    finally:
        for sink in sinks:
            sink.close()


def render_frames(batches, sinks):
    """Every item of every batch handed to each sink, and the sinks flushed after each batch: the
    renderer's whole work (``bench --cost`` times it on a compact echo's records)."""
    for batch in batches:
        for each in batch:
            if type(each) is list and each[0] == "configs":  # numbered in the server's process
                known_configs(*each[1:])
                continue
            record = shipped_record(each)
            for sink in sinks:
                sink.handle(record)
        for sink in sinks:
            sink.flush()


if __name__ == "__main__":
    main()
