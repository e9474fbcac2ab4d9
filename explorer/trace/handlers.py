"""Logging handlers that keep the console off the consumers' path.

``QueuedTraceHandler`` is the handler ``LOGGING`` attaches to the
``explorer.trace`` logger. A consumer only puts the record on a bounded
queue and never waits (when nothing else is configured, the trace's entry
itself, with no logging record: ``connection.deliver``): when the queue is
full the record is dropped and counted, and the count is shown with the
next record that gets through.
A ``TraceListener`` thread takes the records in batches and hands them to
the sinks: the page's panel (``panel``) and, by default, the renderer
process (``renderer``), where ``RichTraceHandler`` renders them and
``JsonLinesTraceHandler`` records them; with ``EXPLORER_TRACE_RENDERER=thread``
those two run on the listener thread itself. (Rendering a pretty scope takes
about 1.7 ms, far too long to do inline on the event loop.)
"""

import collections
import contextlib
import copy
import json
import logging
import os
import random
import sys
import threading
import time
import weakref
from typing import NamedTuple

from rich.text import Text

from explorer.trace import ending
from explorer.trace.connection import logging_record, still_open
from explorer.trace.display import printable
from explorer.trace.panel import PanelTraceHandler
from explorer.trace.pauses import pauses
from explorer.trace.recording import last_run, record_of, run_header
from explorer.trace.render import (
    FULL_MIN_WIDTH,
    compact_lines,
    dropped,
    exception,
    full_lines,
    plain,
    render,
    terminal_text,
)
from explorer.trace.render import console as trace_console
from explorer.trace.renderer import RendererProcess, as_log_record
from explorer.trace.tracebacks import failure_of


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

    To a file or a pipe, where Rich would only strip the styles again, the
    lines are plain text; to a terminal, compact lines are their text and
    escape codes (``terminal_text``), and Rich prints the rest (full mode's
    layout, tracebacks). Lines are gathered and written together when the
    queue runs dry (``flush``): a write per line was half the work.
    """

    MAX_PENDING = 256  # lines held back at most, so a busy server's trace still flows

    def __init__(self, console=None):
        super().__init__()
        self.console = console or trace_console()
        self.plain = not self.console.is_terminal
        self.pending = []
        self.width = None  # the terminal's, for this batch
        self.latency = ScreenLatency()

    def emit(self, record):
        if self.failed:
            return
        try:
            if getattr(record, "trace_dropped", 0):
                self.print(dropped(record.trace_dropped))
            entry = getattr(record, "trace", None)
            if entry is None:
                if record.msg:  # a plain message logged on the trace's logger, not only a drop count
                    self.print(Text(printable(record.getMessage())))
                return
            self.latency.made(entry)
            failure = failure_of(record)
            if self.plain:
                self.write(plain(entry, failure))
            elif self.rich_prints(entry):
                for renderable in render(entry, failure, self.terminal_width()):
                    self.print(renderable)
            else:  # a terminal: the lines with their escape codes, written together too
                if entry.config.mode == "full":
                    self.write(full_lines(entry, self.console, self.terminal_width()))
                else:
                    self.write(terminal_text(compact_lines(entry, self.terminal_width()), self.console))
                for renderable in exception(entry, failure) if failure else ():
                    self.print(renderable)
        except Exception as error:
            self.failed_with(error)

    def rich_prints(self, entry):
        """Whether Rich itself must print ``entry`` on this terminal console: it styles a legacy Windows
        console through the Windows API, keeps what it prints for a picture (``record``), writes nothing
        when ``quiet`` and adds a console-wide ``style``; and a terminal too narrow for full mode's
        indent leaves its event no room but Rich's folding."""
        console = self.console
        return (
            console.legacy_windows
            or console.record
            or console.quiet
            or console.style is not None
            or (entry.config.mode == "full" and self.terminal_width() < FULL_MIN_WIDTH)
        )

    def terminal_width(self):
        """The terminal's width, asked once per batch (a system call each time): lines fit a resized
        terminal from the next batch on."""
        if self.width is None:
            self.width = self.console.width
        return self.width

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
            if self.failed or getattr(self.console.file, "closed", False):  # at exit, after the stream went
                self.pending = []
                return
            try:
                if self.pending:
                    text, self.pending = "\n".join(self.pending) + "\n", []
                    self.console.file.write(text)
                self.console.file.flush()
            except Exception as error:  # a closed pipe: the recording goes on
                self.failed_with(error)
                return
            self.latency.shown()
            self.width = None

    def close(self):
        if self.pending:  # the listener normally wrote them out before it stopped
            self.flush()
        if self.latency.count:
            say(self.latency.summary())
        self.latency = ScreenLatency()
        super().close()


class ScreenLatency:
    """How long records took to reach the console, from a fair sample of every one shown.

    The console is no use if it lags: this is what ``manage.py bench`` reports
    (the trace says it as it stops). Its lag is measured from when the trace
    made each line. An event that waited for its handler is only made into
    a line as the handler starts, and its line says how long it waited; the
    time from the event itself is kept beside, and includes that wait.
    """

    SAMPLE = 20_000

    def __init__(self):
        self.waiting = []  # (made, at) of each record made but not yet written out
        self.sample = []  # (from the line made, from the event) of a fair sample of records
        self.count = 0
        self.largest = (0.0, 0.0)

    def made(self, entry):
        if entry.at:
            self.waiting.append((entry.made or entry.at, entry.at))

    def shown(self):
        now = time.time()
        for made, at in self.waiting:
            latency = (now - made, now - at)
            self.count += 1
            self.largest = (max(self.largest[0], latency[0]), max(self.largest[1], latency[1]))
            if len(self.sample) < self.SAMPLE:
                self.sample.append(latency)
            else:  # reservoir sampling: every record equally likely to be in the sample
                slot = random.randrange(self.count)
                if slot < self.SAMPLE:
                    self.sample[slot] = latency
        self.waiting = []

    def summary(self):
        def figures(which):
            ordered = sorted(latency[which] for latency in self.sample)

            def ms(fraction):
                return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

            return f"p50 {ms(0.5):.1f} ms, p99 {ms(0.99):.1f} ms, max {self.largest[which] * 1000:.1f} ms"

        return (
            f"{self.count:,} records shown; from line made to screen: {figures(0)}; "
            f"from event to screen: {figures(1)}"
        )


class JsonLinesTraceHandler(FailsOnce, logging.FileHandler):
    """Appends each trace record to a file as one JSON line. Runs on the listener thread.

    The file is unbuffered and each line goes out in one ``write`` call, so a
    reader (or a server killed at any moment) never sees a line cut short
    by a buffer boundary.
    """

    def __init__(self, filename, origin=None):
        super().__init__(filename, mode="ab", delay=True)  # opened at the first record
        self.sink = f"recording to {filename}"
        self.run = None  # this process's run in the file, once its header is written
        self.origin = origin  # the traced process, when it is not this one (renderer.py)

    def _open(self):
        stream = open(self.baseFilename, self.mode, buffering=0)  # noqa: SIM115 - FileHandler keeps it
        if self.run is None:  # a run begins: its header first, numbered after the file's last
            last = last_run(self.baseFilename)
            header = run_header(last["run"] + 1 if last else 1, self.origin)
            if last and (last.get("pid"), last.get("started")) == (header["pid"], header["started"]):
                self.run = last["run"]  # this process's own run, begun by its renderer: go on with it
            else:
                self.run = header["run"]
                stream.write((json.dumps(header, ensure_ascii=True) + "\n").encode("ascii"))
        return stream

    def format(self, record):
        data = record_of(record)
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


queued_handlers: "weakref.WeakSet[QueuedTraceHandler]" = weakref.WeakSet()


def forked():
    for handler in list(queued_handlers):
        handler.forked()


os.register_at_fork(after_in_child=forked)


def warm_up():
    """Starts the trace's renderer process now, where the ``explorer.trace`` logger has one: called as a
    server builds its application (``TraceMiddleware``), so it is running before the first connection.
    And makes sure a SIGTERM lets the trace end first (``ending``)."""
    logger = logging.getLogger("explorer.trace")
    if not logger.isEnabledFor(logging.INFO):  # silenced: nothing will be rendered
        return
    ending.end_before_sigterm()
    for handler in logger.handlers:
        if isinstance(handler, QueuedTraceHandler):
            handler.warm_up()


STOP_TIMEOUT = 10  # seconds a close waits for a stuck console
BATCH_PAUSE = 0.02  # seconds the listener lets records gather between batches


class TraceListener(threading.Thread):
    """The thread that hands each batch of records to the sinks: console, recording, page panel.

    Records gather in a deque (an append under a short lock, no wakeup) and the thread
    takes them all every BATCH_PAUSE: one wakeup per batch, not per record,
    leaves the GIL with the event loop for longer stretches. (A
    ``queue.Queue`` woke the listener for each record, and each wakeup made
    the event loop wait for the GIL.)
    """

    def __init__(self, handler):
        super().__init__(name="explorer.trace", daemon=True)
        self.handler = handler
        self.stopping = threading.Event()
        self.done = threading.Condition()
        self.handled = 0  # records handed on, all told: what flush waits for

    def run(self):
        failed = False
        while True:
            stopping = self.stopping.wait(BATCH_PAUSE)
            try:
                self.take()
            except Exception as error:  # a sink's bug must not end the trace, nor repeat itself
                if not failed:
                    failed = True
                    say(f"a batch of records was lost ({type(error).__name__}: {error}); the trace goes on")
            if stopping:
                return

    def take(self):
        batch = self.handler.taken()
        # A sink with ``take`` takes the batch as it was queued (entries, mostly); the others
        # take logging records, made once for all of them.
        takers = [target for target in self.handler.targets if hasattr(target, "take")]
        for target in takers:
            target.take(batch)
        if len(takers) < len(self.handler.targets):
            for record in map(logging_record, batch.items):
                for target in self.handler.targets:
                    if target not in takers and record.levelno >= target.level:
                        target.handle(record)
        for target in self.handler.targets:
            target.flush()
        self.handler.released(batch.weight)
        with self.done:
            self.handled += len(batch.items)
            self.done.notify_all()

    def wait_for(self, count, timeout=None):
        """Until ``count`` records have been handed on (or ``timeout``): whether they have."""
        with self.done:
            return self.done.wait_for(lambda: self.handled >= count, timeout)


class Batch(NamedTuple):
    """What the listener takes from the queue at once, in the order it was queued."""

    items: collections.deque  # logging records, and entries' values (``connection.deliver``)
    weights: collections.deque  # about how many bytes each holds, as the queue counted them
    weight: int  # all of them together
    plain: bool  # every item is an entry's values the renderer can take as it is


class QueuedTraceHandler(logging.Handler):
    """Gathers records for a listener thread; drops and counts them when it holds too many.

    Too many means ``queue_size`` records, or ``queue_bytes`` of what they
    hold (each record carries its weight, counted when it is made): a stuck
    console must not hold a server's memory either. A consumer never waits.
    The queue holds logging records, and the trace's own entries, which
    ``connection.deliver`` puts here directly when nothing else is configured.
    """

    listening = False

    def __init__(
        self,
        queue_size=10_000,
        console=None,
        file=None,
        queue_bytes=64 * 1024 * 1024,
        renderer="thread",
    ):
        super().__init__()

        def in_this_process():
            return [RichTraceHandler(console), *([JsonLinesTraceHandler(file)] if file else [])]

        # A console object given here lives in this process: it is rendered to here.
        if renderer == "process" and console is None:
            self.targets = [RendererProcess(file, in_this_process)]
        else:
            self.targets = in_this_process()
        self.targets.append(PanelTraceHandler())  # the page's live panel: idle until a page watches
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.waiting = collections.deque()  # records the listener has not taken yet
        self.weights = collections.deque()  # what each of them holds
        self.waiting_weight = 0  # and all told
        self.unusual = 0  # of them, how many are not an entry's values (a logging record, a scope)
        self.held = 0  # bytes the records waiting and being handed on hold
        self.counting = threading.Lock()  # records come from the loop and from worker threads
        self.starting = threading.Lock()  # one listener starts, whichever thread finds none
        self.accepted = 0  # records taken in, all told
        self.dropped = 0  # records lost to a full queue, all told
        self.reported = 0  # of which the console has been told
        self.exiting = False
        self.listen()
        ending.at_end(self.exit)  # atexit, and where a server ends its process without it
        queued_handlers.add(self)

    def warm_up(self):
        """Starts what the sinks need before the first record: the renderer process."""
        for target in self.targets:
            if hasattr(target, "warm_up"):
                target.warm_up()

    def forked(self):
        """In a child forked from this process: no listener thread came along, and what was queued
        is the parent's to hand on, not the child's too. A lock another thread held at the fork stays
        held in the child: a new one."""
        self.counting = threading.Lock()
        self.starting = threading.Lock()
        self.waiting.clear()
        self.weights.clear()
        self.waiting_weight = 0
        self.unusual = 0
        self.held = 0
        self.accepted = self.dropped = self.reported = 0  # the child's own, as its listener counts them
        self.listening = False  # the child's own listener starts at its first record
        for target in self.targets:
            if hasattr(target, "forked"):
                target.forked()

    def listen(self):
        with self.starting:  # the event loop and a worker thread may both find it not listening
            if self.listening and not self.listener.stopping.is_set():  # one is listening, and stays
                return
            self.listener = TraceListener(self)
            with self.counting:  # what the listeners before it handed on (or was let go) counts as handed on
                self.listener.handled = self.accepted - len(self.waiting)
            self.listener.start()
            self.listening = True

    def handle(self, record):
        # logging.Handler.handle takes the handler's lock around emit: not needed, the count has its own.
        if self.filter(record):
            self.emit(record)
        return record

    def emit(self, record):
        self.enqueue(record, getattr(record, "trace_weight", 0))

    def enqueue(self, item, weight, usual=False):
        """Queues ``item``, a logging record or a trace entry's values that hold about ``weight`` bytes;
        ``usual``: it is an entry's values, and not a scope's (``connection.deliver`` knows)."""
        # logging.config.dictConfig closes every handler it finds, and
        # django.setup() runs it again each time it is called (asgi.py's
        # get_asgi_application does): a handler the explorer.trace app
        # attached is still on its logger, so it listens again.
        if not self.listening and not self.exiting:
            self.listen()
        with self.counting:
            if len(self.waiting) >= self.queue_size or self.held + weight > self.queue_bytes:
                self.dropped += 1
                return
            if self.dropped > self.reported:  # the first record through says how many were lost
                item = copy.copy(logging_record(item))
                item.trace_dropped = self.dropped - self.reported
                self.reported = self.dropped
                usual = False
            if not usual:
                self.unusual += 1
            self.held += weight
            self.accepted += 1
            self.waiting_weight += weight
            self.waiting.append(item)
            self.weights.append(weight)

    def taken(self):
        """Every record waiting, for the listener, as a ``Batch``. Swapped out whole: no step per record."""
        with self.counting:
            waiting, self.waiting = self.waiting, collections.deque()
            weights, self.weights = self.weights, collections.deque()
            weight, self.waiting_weight = self.waiting_weight, 0
            usual, self.unusual = not self.unusual, 0
        return Batch(waiting, weights, weight, usual)

    def released(self, weight):
        """The listener is done with records that held ``weight``: it is free again."""
        with self.counting:
            self.held -= weight

    def flush(self, timeout=None):
        """Wait until every record taken in so far has been handed on, and the sinks have written it."""
        if self.listening:
            self.listener.wait_for(self.accepted, timeout)
        for target in self.targets:
            target.flush()

    def exit(self):
        still_open()  # said before the queue closes, and while it may still start its listener
        self.exiting = True
        self.close()
        # The process's, said once as it stops, by one that traced something (not every command).
        if self.accepted and not pauses.said:
            pauses.said = True
            say(pauses.summary())

    def close(self):
        with self.starting:  # the listener this close stops: not one a record started since
            listener, listening, self.listening = self.listener, self.listening, False
        if listening:
            with self.counting:
                if self.dropped > self.reported:
                    # A last record that only carries the count, so the listener says it.
                    self.waiting.append(as_log_record("message", "", self.dropped - self.reported))
                    self.weights.append(0)
                    self.unusual += 1
                    self.reported = self.dropped
            # The listener hands on what is waiting, then ends. If the console is
            # stuck, give up: its daemon thread ends with the process.
            listener.stopping.set()
            listener.join(STOP_TIMEOUT)
        for target in self.targets:
            target.close()
        super().close()
