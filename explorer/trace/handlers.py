"""Logging handlers that keep the console off the consumers' path.

``QueuedTraceHandler`` is the handler ``LOGGING`` attaches to the
``explorer.trace`` logger. A consumer's ``emit`` only puts the record on a
bounded queue and never waits: when the queue is full the record is dropped
and counted, and the count is shown with the next record that gets through.
A ``logging.handlers.QueueListener`` thread hands each record to
``RichTraceHandler``, which renders it, and to the recording and the page's
panel (``panel``). (Rendering a pretty scope takes about 1.7 ms, far too
long to do inline on the event loop.)
"""

import atexit
import contextlib
import copy
import json
import logging
import queue
import sys
import threading
import time
from logging.handlers import QueueHandler, QueueListener

from rich.console import Console
from rich.text import Text

from explorer.trace.display import printable
from explorer.trace.panel import PanelTraceHandler
from explorer.trace.recording import as_record, last_run, run_header
from explorer.trace.render import dropped, plain, render, shown


def trace_console(file=None):
    # markup and emoji off: nothing printed is ever read as Rich markup.
    return Console(file=file or sys.stderr, markup=False, emoji=False, highlight=False)


class FailsOnce:
    """A sink that fails (a full disk, a closed console) says so once, on one line, and stops.

    The server goes on serving, and the other sink (console or recording)
    goes on writing: logging's own handleError would print a traceback for
    every record instead.
    """

    failed = False
    said = False  # that a record could not be shown: once is enough
    sink = "the trace's console"

    def failed_with(self, error):
        why = f"{type(error).__name__}: {error}"
        if isinstance(error, OSError):  # the sink itself: a full disk, a closed pipe
            if not self.failed:
                self.failed = True
                say(f"{self.sink} failed ({why}); it stops, serving goes on")
        elif not self.said:  # one record that could not be shown: the others still are
            self.said = True
            say(f"a record could not be shown ({why}); the trace goes on, and says this once")


def say(line):
    with contextlib.suppress(Exception):  # stderr may be what failed
        sys.__stderr__.write(f"explorer.trace: {line}\n")
        sys.__stderr__.flush()


class RichTraceHandler(FailsOnce, logging.Handler):
    """Renders trace records on a Rich console. Runs on the listener thread.

    On a terminal, Rich prints each renderable. To a file or a pipe, where Rich
    would only strip the styles again, the lines are plain text, gathered and
    written together when the queue runs dry (``flush``): the listener shares
    the GIL with the consumers, and a write per line was half its time.
    """

    MAX_PENDING = 256  # lines held back at most, so a busy server's trace still flows

    def __init__(self, console=None, level=logging.NOTSET):
        super().__init__(level)
        self.console = console or trace_console()
        self.plain = not self.console.is_terminal
        self.pending = []

    def emit(self, record):
        if self.failed:
            return
        try:
            if getattr(record, "trace_dropped", 0):
                self.print(dropped(record.trace_dropped))
            entry = getattr(record, "trace", None)
            if entry is None and not record.msg:  # only a drop count
                return
            if entry is None:  # a plain message logged on the trace's logger
                self.print(Text(printable(record.getMessage())))
            elif self.plain:
                self.write(plain(entry, record.exc_info))
            else:
                for renderable in render(entry, record.exc_info, self.console.width):
                    self.print(renderable)
        except Exception as error:
            self.failed_with(error)

    def print(self, renderable):
        if self.plain and isinstance(renderable, Text):
            self.write([renderable.plain])
            return
        self.flush()  # keep the order of what is still pending
        # Lines are never cut: a terminal wraps them, a file keeps one per event.
        self.console.print(renderable, soft_wrap=isinstance(renderable, Text))

    def write(self, lines):
        self.pending.extend(lines)
        if len(self.pending) >= self.MAX_PENDING:
            self.flush()

    def flush(self):
        with self.lock:
            if getattr(self.console.file, "closed", False):  # at exit, after the stream went
                self.pending = []
                return
            if self.pending:
                text, self.pending = "\n".join(self.pending) + "\n", []
                self.console.file.write(text)
            self.console.file.flush()

    def close(self):
        if self.pending:  # the listener normally wrote them out before it stopped
            self.flush()
        super().close()


class JsonLinesTraceHandler(FailsOnce, logging.FileHandler):
    """Appends each trace record to a file as one JSON line. Runs on the listener thread.

    The file is unbuffered and each line goes out in one ``write`` call, so a
    reader (or a server killed at any moment) never sees a line cut short
    by a buffer boundary.
    """

    def __init__(self, filename):
        super().__init__(filename, mode="ab", delay=True)  # opened at the first record
        self.sink = f"recording to {filename}"
        self.run = None  # this process's run in the file, once its header is written

    def _open(self):
        stream = open(self.baseFilename, self.mode, buffering=0)  # noqa: SIM115 - FileHandler keeps it
        if self.run is None:  # a run begins: its header first, numbered after the file's last
            self.run = last_run(self.baseFilename) + 1
            header = run_header(self.run)
            stream.write((json.dumps(header, ensure_ascii=True) + "\n").encode("ascii"))
        return stream

    def format(self, record):
        entry = getattr(record, "trace", None)
        if entry is None:
            data = {"kind": "message", "text": record.getMessage()} if record.msg else {}
        else:
            data = as_record(entry, shown(entry), record.exc_info)
        if getattr(record, "trace_dropped", 0):
            data["dropped"] = record.trace_dropped
        if data and self.run is not None:
            data["run"] = self.run
        # ensure_ascii: bidi and C1 controls stay escaped for whoever cats or tails the file.
        return json.dumps(data, ensure_ascii=True) if data else ""

    def emit(self, record):
        if self.failed:
            return
        try:
            if self.stream is None:  # the first record, or closed by a logging reconfiguration
                self.stream = self._open()
            line = self.format(record)
            if line:
                data = memoryview((line + "\n").encode("ascii"))
                while data:
                    data = data[self.stream.write(data) :]
        except Exception as error:
            self.failed_with(error)


SENTINEL_TIMEOUT = 10  # seconds a close waits for a stuck console
BATCH_PAUSE = 0.02  # seconds the listener waits when the queue runs dry


class TraceListener(QueueListener):
    """A QueueListener whose thread has a name, so the trace's own work is easy to spot."""

    def start(self):
        self._thread = threading.Thread(target=self._monitor, name="explorer.trace", daemon=True)
        self._thread.start()

    released = staticmethod(lambda record: None)  # QueuedTraceHandler sets its own

    def handle(self, record):
        super().handle(record)
        self.released(record)
        if self.queue.empty():  # caught up: write out what the handlers gathered
            self.flush_handlers()

    def dequeue(self, block):
        if self.queue.empty():
            # Let records gather: one wakeup per batch rather than per record
            # leaves the GIL with the event loop for longer stretches.
            time.sleep(BATCH_PAUSE)
        record = super().dequeue(block)
        if record is self._sentinel:  # stopping: write out the rest from this thread
            self.flush_handlers()
        return record

    def flush_handlers(self):
        for handler in self.handlers:
            handler.flush()

    def enqueue_sentinel(self):
        # Called at close, off every consumer's path: wait for room in a full
        # queue (the stdlib's put_nowait would fail there), but not forever.
        self.queue.put(self._sentinel, timeout=SENTINEL_TIMEOUT)


class QueuedTraceHandler(QueueHandler):
    """Enqueues records for a listener thread; drops and counts them when the queue is full.

    Full means ``queue_size`` records, or ``queue_bytes`` of what they hold
    (each record carries its weight, counted when it is made): a stuck
    console must not hold a server's memory either.
    """

    listening = False

    def __init__(
        self, queue_size=10_000, console=None, file=None, level=logging.NOTSET, queue_bytes=64 * 1024 * 1024
    ):
        super().__init__(queue.Queue(maxsize=queue_size))
        self.setLevel(level)
        self.target = RichTraceHandler(console)
        self.targets = [self.target]
        if file:
            self.targets.append(JsonLinesTraceHandler(file))
        self.targets.append(PanelTraceHandler())  # the page's live panel: idle until a page watches
        self.queue_bytes = queue_bytes
        self.held = 0  # bytes the queued records hold
        self.counting = threading.Lock()  # records come from the loop and from worker threads
        self.dropped = 0  # records lost to a full queue, all told
        self.reported = 0  # of which the console has been told
        self.exiting = False
        self.listen()
        atexit.register(self.exit)

    def listen(self):
        self.listener = TraceListener(self.queue, *self.targets, respect_handler_level=True)
        self.listener.released = self.released
        self.listener.start()
        self.listening = True

    def emit(self, record):
        # logging.config.dictConfig closes every handler it finds, and
        # django.setup() runs it again each time it is called (asgi.py's
        # get_asgi_application does): a handler the explorer.trace app
        # attached is still on its logger, so it listens again.
        if not self.listening and not self.exiting:
            self.listen()
        super().emit(record)

    def prepare(self, record):
        # Records stay in this process, so skip QueueHandler's formatting (and
        # its traceback rendering) on the consumer's thread: the listener does it.
        if self.dropped > self.reported:
            record = copy.copy(record)
            record.trace_dropped = self.dropped - self.reported
        return record

    def enqueue(self, record):
        weight = getattr(record, "trace_weight", 0)
        with self.counting:
            if self.held + weight > self.queue_bytes:
                self.dropped += 1
                return
            try:
                self.queue.put_nowait(record)
            except queue.Full:
                self.dropped += 1
                return
            self.held += weight
            self.reported += getattr(record, "trace_dropped", 0)

    def released(self, record):
        """The listener is done with ``record``: what it held is free again."""
        with self.counting:
            self.held -= getattr(record, "trace_weight", 0)

    def flush(self):
        """Wait until every queued record has been rendered."""
        if self.listening:
            self.queue.join()
        for target in self.targets:
            target.flush()

    def exit(self):
        self.exiting = True
        self.close()

    def close(self):
        if self.listening:
            self.listening = False
            # The listener renders what is queued, then ends. If the console is
            # stuck, give up: its daemon thread ends with the process.
            with contextlib.suppress(queue.Full):
                if self.dropped > self.reported:
                    # A last record that only carries the count, so the listener says it.
                    notice = logging.makeLogRecord(
                        {"name": "explorer.trace", "msg": "", "levelno": logging.INFO}
                    )
                    notice.trace_dropped = self.dropped - self.reported
                    self.queue.put(notice, timeout=SENTINEL_TIMEOUT)
                    self.reported = self.dropped
                self.listener.stop()
        for target in self.targets:
            target.close()
        super().close()
