"""Logging handlers that keep the console off the consumers' path.

``QueuedTraceHandler`` is the handler ``LOGGING`` attaches to the
``explorer.trace`` logger. A consumer's ``emit`` only puts the record on a
bounded queue and never waits: when the queue is full the record is dropped
and counted, and the count is shown with the next record that gets through.
A ``logging.handlers.QueueListener`` thread hands each record to
``RichTraceHandler``, which renders it. (Rendering a pretty scope takes about
1.7 ms, far too long to do inline on the event loop.)
"""

import atexit
import contextlib
import copy
import logging
import queue
import sys
import threading
from logging.handlers import QueueHandler, QueueListener

from rich.console import Console
from rich.text import Text

from explorer.trace.display import printable
from explorer.trace.recording import JsonLinesTraceHandler
from explorer.trace.render import dropped, render


def trace_console(file=None):
    # markup and emoji off: nothing printed is ever read as Rich markup.
    return Console(file=file or sys.stderr, markup=False, emoji=False, highlight=False)


class RichTraceHandler(logging.Handler):
    """Renders trace records on a Rich console. Runs on the listener thread."""

    def __init__(self, console=None, level=logging.NOTSET):
        super().__init__(level)
        self.console = console or trace_console()

    def emit(self, record):
        try:
            if getattr(record, "trace_dropped", 0):
                self.print(dropped(record.trace_dropped))
            entry = getattr(record, "trace", None)
            if entry is None and not record.msg:  # only a drop count
                return
            if entry is None:  # a plain message logged on the trace's logger
                renderables = [Text(printable(record.getMessage()))]
            else:
                renderables = render(entry, record.exc_info)
            for renderable in renderables:
                self.print(renderable)
        except Exception:
            self.handleError(record)

    def print(self, renderable):
        if isinstance(renderable, Text) and not self.console.is_terminal:
            # To a file or a pipe Rich would only strip the styles again, at
            # several times the cost of the line itself: write the text.
            self.console.file.write(renderable.plain + "\n")
            self.console.file.flush()
        else:
            # Lines are never cut: a terminal wraps them, a file keeps one per event.
            self.console.print(renderable, soft_wrap=isinstance(renderable, Text))


SENTINEL_TIMEOUT = 10  # seconds a close waits for a stuck console


class TraceListener(QueueListener):
    """A QueueListener whose thread has a name, so the trace's own work is easy to spot."""

    def start(self):
        self._thread = threading.Thread(target=self._monitor, name="explorer.trace", daemon=True)
        self._thread.start()

    def enqueue_sentinel(self):
        # Called at close, off every consumer's path: wait for room in a full
        # queue (the stdlib's put_nowait would fail there), but not forever.
        self.queue.put(self._sentinel, timeout=SENTINEL_TIMEOUT)


class QueuedTraceHandler(QueueHandler):
    """Enqueues records for a listener thread; drops and counts them when the queue is full."""

    def __init__(self, queue_size=10_000, console=None, file=None, level=logging.NOTSET):
        super().__init__(queue.Queue(maxsize=queue_size))
        self.setLevel(level)
        self.target = RichTraceHandler(console)
        self.targets = [self.target]
        if file:
            self.targets.append(JsonLinesTraceHandler(file))
        self.dropped = 0  # records lost to a full queue, all told
        self.reported = 0  # of which the console has been told
        self.listener = TraceListener(self.queue, *self.targets, respect_handler_level=True)
        self.listener.start()
        self.listening = True
        atexit.register(self.close)

    def prepare(self, record):
        # Records stay in this process, so skip QueueHandler's formatting (and
        # its traceback rendering) on the consumer's thread: the listener does it.
        if self.dropped > self.reported:
            record = copy.copy(record)
            record.trace_dropped = self.dropped - self.reported
        return record

    def enqueue(self, record):
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
        else:
            self.reported += getattr(record, "trace_dropped", 0)

    def flush(self):
        """Wait until every queued record has been rendered."""
        if self.listening:
            self.queue.join()
        for target in self.targets:
            target.flush()

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
        atexit.unregister(self.close)
        for target in self.targets:
            target.close()
        super().close()
