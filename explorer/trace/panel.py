"""The page's live trace panel: the trace's records, as they happen, sent to the browsers watching.

Another sink of the trace's listener (``PanelTraceHandler``), beside the
console and the recording, and fed the same records: ``record_of`` each, the
entry as shown, so redacted and shortened alike, but only while a page
watches (``Hub``). Off the consumers' path twice over: the listener thread
only appends each record to every watching page's own bounded buffer
(``Subscriber``), and a page that falls behind
loses records from its buffer, counted, never anyone's time. A page
acknowledges each batch it has drawn; with ``WINDOW`` batches unacknowledged
the panel sends no more, so a stalled page (or one that stopped reading)
holds at most its buffer and that window, under any server. An
acknowledgement is only the page's word: where the server shows what it
still holds for the page (``explorer.unsent``: daphne, uvicorn), the panel
also sends nothing while that is past a buffer's worth, so a client that
acknowledges what it never read holds no more.

``TracePanel`` is the panel's WebSocket endpoint, a plain ASGI application
(no consumer: a consumer's dispatch hops onto the sync thread before every
event, and the panel must stay live while that thread is held). The trace
never traces it (``TraceMiddleware`` leaves ``PATH`` alone): it would trace
its own records. Route it inside the origin check: it shows every
connection's traffic to whoever opens it.
"""

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque

from explorer.trace.entry import entry_of, only_data
from explorer.trace.recording import entry_record, iso, record_of
from explorer.unsent import PAUSED, probe

ROUTE = "ws/trace/"  # for URLRouter
PATH = "/" + ROUTE  # what TraceMiddleware leaves untraced, and the page connects to
BUFFER_RECORDS = 2000  # records one page may have waiting; more are dropped and counted
BUFFER_BYTES = 2 * 1024 * 1024  # and what they may hold
BATCH_RECORDS = 200  # records sent in one message
BATCH_BYTES = 256 * 1024
WINDOW = 4  # batches a page may leave unacknowledged before the panel waits for it
RECENT_RECORDS = 500  # records a page gets when it opens, the last ones before it came
RECENT_BYTES = 1024 * 1024  # and what they may hold, as the trace's queue weighs them
MAX_PANELS = 8  # pages watching at once: each may hold its buffer
# Of those, clients with no Origin (not a page: a script, a command-line client) may hold this many, so
# that they can never shut the page itself out.
MAX_WITHOUT_ORIGIN = MAX_PANELS // 2
MAX_ACK = 64  # characters of a page's acknowledgement; anything longer is not one
UNREAD_BYTES = BUFFER_BYTES  # what the server may hold for a page that has not read it; then nothing more
UNREAD_PAUSE = 0.1  # seconds between looks at what the server holds, while it holds too much


class Subscriber:
    """One watching page's buffer: the listener thread offers, the page's task takes."""

    def __init__(self, loop, wake, page=True):
        self.loop = loop
        self.wake = wake  # an asyncio.Event on the page's loop
        self.page = page  # its handshake had an Origin: a browser's page, not a script
        self.lock = threading.Lock()
        self.lines = deque()
        self.held = 0  # bytes in ``lines``
        self.dropped = 0  # records lost since the page was last told
        self.before_gap = 0  # of the lines waiting, how many came before the first of those losses
        self.signalled = False  # a wake is on its way: one per batch, not per record
        self.gone = False  # it stopped watching: nothing more is offered to it
        self.refused = False  # a record was lost to it for want of room, and it has not taken any since

    def full(self):
        """Whether it has no room for more lines: read without the lock, a guess the listener acts on for a
        whole batch. A line is refused at either bound (``offer``), and a page that has refused one has no
        room until it takes some: one that takes some just after the guess loses that batch, counted."""
        return self.refused or len(self.lines) >= BUFFER_RECORDS

    def offer(self, line):
        """Called on the listener thread: keep ``line`` if there is room, else count it. Never waits; the
        page is woken once the listener's whole batch is offered (``signal``)."""
        with self.lock:
            if len(self.lines) >= BUFFER_RECORDS or self.held + len(line) > BUFFER_BYTES:
                self.lost(1)
                return
            self.lines.append(line)
            self.held += len(line)

    def missed(self, count):
        """Called on the listener thread: ``count`` records came that were not made lines, as it had no
        room for them (``full``)."""
        with self.lock:
            self.lost(count)

    def signal(self):
        """Called on the listener thread once its batch is offered: the page is woken, once, to take what
        waits, lines or only a count of those it lost (it may have taken every line since).

        Not at the first line: waking the page writes its loop's self-pipe, which hands the loop the GIL,
        and a page woken so took the listener's batch a line at a time, a message and an acknowledgement
        each."""
        with self.lock:
            if self.signalled or not (self.lines or self.dropped):
                return
            self.signalled = True  # a wake is on its way: one per batch
        self.wake_page()

    def wake_page(self):
        with contextlib.suppress(RuntimeError):  # the page's loop has closed: it is going anyway
            self.loop.call_soon_threadsafe(self.wake.set)

    def lost(self, count):
        if not self.dropped:
            self.before_gap = len(self.lines)
        self.dropped += count
        self.refused = True

    def take(self):
        """A batch of lines, and how many were lost just before them; on the page's loop.

        A batch stops where records were lost, so the page can say where: the
        count comes with the first batch after the gap (losses that follow
        before it is told are added to it).
        """
        with self.lock:
            dropped, limit = 0, BATCH_RECORDS
            if self.dropped and not self.before_gap:
                dropped, self.dropped = self.dropped, 0
            elif self.dropped:
                limit = min(limit, self.before_gap)
            batch, size = [], 0
            while self.lines and len(batch) < limit:
                if batch and size + len(self.lines[0]) > BATCH_BYTES:
                    break
                line = self.lines.popleft()
                batch.append(line)
                size += len(line)
            self.held -= size
            if batch or not self.lines:  # room again (a line larger than the whole buffer is refused alone)
                self.refused = False
            if self.dropped:
                self.before_gap -= len(batch)
            self.signalled = bool(self.lines) or bool(self.dropped)
            return batch, dropped


class Hub:
    """The pages watching this process's trace, and its last records, for a page that opens.

    Making a record a page's line (``entry_record``, then JSON) costs some
    20 µs of the listener's thread (``bench --cost``), which shares the GIL with the event loop, so it
    is done only while a page watches and has room for it (a page that stopped
    reading is only told how many it lost), and once per record: a line made
    is kept, for the next page that opens. The last records are otherwise kept
    as the queue held them, a tuple of plain values each, except those that
    may hold an application's objects (a scope, a logging record with its
    traceback), made into lines at once: the recent records keep no
    consumer, user or traceback alive.

    The pages are the event loop's (subscribe, unsubscribe) and the
    listener's: ``lock`` guards them, never while lines are made. The recent
    records are the listener's alone (``making``).
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.making = threading.Lock()
        self.subscribers = set()
        self.joining = []  # pages that opened since the listener's last batch: the recent records first
        self.recent = deque()  # (number, the record as queued or its line, weight) of the last records
        self.recent_weight = 0
        self.numbered = 0  # records numbered so far: one order for every page, the listener's
        self.said = False  # that a record could not be made into a line: once

    def keep(self, items, weights):
        """Called on the listener thread with each batch (records as queued, and what each holds): kept
        among the recent records, and made into lines for the pages watching."""
        with self.making:
            with self.lock:
                joining, self.joining = self.joining, []
                # A page with no room loses this batch whole, told how many: only the lines that are made
                # at once anyway (``plain``: no) are made for it.
                wanted = bool(joining) or not all(each.full() for each in self.subscribers)
            first, self.numbered = self.numbered + 1, self.numbered + len(items)
            numbered = zip(range(first, self.numbered + 1), items, weights, strict=True)
            new = [self.made(each) if wanted or not plain(each[1]) else each for each in numbered]
            if joining:
                self.recent = deque(map(self.made, self.recent))
                self.recent_weight = sum(weight for _, _, weight in self.recent)
            self.recent.extend(new)
            self.recent_weight += sum(weight for _, _, weight in new)
            while len(self.recent) > RECENT_RECORDS or self.recent_weight > RECENT_BYTES:
                self.recent_weight -= self.recent.popleft()[2]
            with self.lock:
                watchers = list(self.subscribers)
                for subscriber in joining:  # what came before them, this batch's too
                    if not subscriber.gone:
                        for _, line, _ in self.recent:
                            if line:
                                subscriber.offer(line)
                        self.subscribers.add(subscriber)
                if watchers:
                    handed(new, watchers)
            for subscriber in (*watchers, *joining):
                subscriber.signal()

    def made(self, numbered):
        """A numbered record with its line in place of the record, and the line's length as its weight
        when it is more; as it is when it is a line already (or had nothing to show)."""
        number, item, weight = numbered
        if item is None or type(item) is str:
            return numbered
        line = self.line(number, item)
        return number, line, max(weight, len(line)) if line else 0

    def line(self, number, item):
        """A record as a page's line (its JSON), or None when it holds nothing to show."""
        try:
            # An entry's values (``connection.deliver``), made into no logging record on the way.
            data = entry_record(entry_of(item)) if type(item) is tuple else record_of(item)
            if data.keys() == {"dropped"}:  # only a count of what the trace's own full queue dropped
                data = {"kind": "message", "text": "", **data}
            if not data:
                return None
            data["seq"] = number
            return json.dumps(data, ensure_ascii=True)
        except Exception as error:  # a record the panel cannot send: the others still go
            if not self.said:
                self.said = True
                from explorer.trace.handlers import say

                say(f"the page's panel could not send a record ({type(error).__name__}: {error}); it goes on")
            return None

    def subscribe(self, loop, wake, page=True):
        """A page begins to watch (``page``: its handshake had an Origin): its buffer, which the listener
        gives the recent records with its next batch; None when too many watch, or too many that are not
        pages."""
        with self.lock:
            watching = [*self.subscribers, *self.joining]
            without_origin = sum(not each.page for each in watching)
            if len(watching) >= MAX_PANELS or (not page and without_origin >= MAX_WITHOUT_ORIGIN):
                return None
            subscriber = Subscriber(loop, wake, page)
            self.joining.append(subscriber)
            return subscriber

    def unsubscribe(self, subscriber):
        with self.lock:
            subscriber.gone = True  # a batch under way gives it nothing more
            self.subscribers.discard(subscriber)
            if subscriber in self.joining:
                self.joining.remove(subscriber)


def handed(new, watchers):
    """Each of the new records offered to the pages watching as its line, in order; those kept as queued,
    not made lines (no page had room), counted as lost to each, in their place."""
    missed = 0
    for _, line, _ in new:
        if type(line) is not str:
            missed += line is not None  # None: a record with nothing to show
            continue
        for subscriber in watchers:
            if missed:
                subscriber.missed(missed)
            subscriber.offer(line)
        missed = 0
    for subscriber in watchers if missed else ():
        subscriber.missed(missed)


def plain(item):
    """Whether a record as queued holds plain values only, cut to what the trace shows: an entry's values
    (``connection.deliver``), a scope's when it holds none of the application's objects."""
    return type(item) is tuple and (item[1] != "scope" or only_data(item))


hub = Hub()


class PanelTraceHandler(logging.Handler):
    """Hands the trace's records to the page's panel (``hub``). Runs on the listener thread, like the
    console."""

    def take(self, batch):
        """The listener's batch as it was queued (``handlers.Batch``): made into lines only for a page."""
        hub.keep(batch.items, batch.weights)

    def emit(self, record):
        hub.keep([record], [getattr(record, "trace_weight", 0)])


def unread(held):
    """Whether what the server holds for a page (as ``explorer.unsent`` reads it) is too much to send more."""
    return held is PAUSED or (held is not None and held > UNREAD_BYTES)


def acknowledged(event):
    """The batch number a page's ``{"ack": N}`` acknowledges, or None for anything else."""
    text = event.get("text")
    if not isinstance(text, str) or len(text) > MAX_ACK:
        return None
    try:
        ack = json.loads(text).get("ack")
    except (ValueError, AttributeError):
        return None
    return ack if isinstance(ack, int) and not isinstance(ack, bool) else None


class TracePanel:
    """The panel's WebSocket endpoint: a hello, then batches of records as they come, acknowledged.

    Every message is JSON: ``{"type": "hello", ...}`` once, then
    ``{"type": "records", "batch": N, "dropped": D, "records": [...]}``,
    where ``dropped`` counts what this page lost just before these records. The
    page answers each batch with ``{"ack": N}``; it may send nothing else.
    """

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "websocket" or (await receive()).get("type") != "websocket.connect":
            return
        wake = asyncio.Event()
        page = any(name == b"origin" for name, _ in scope.get("headers", ()))
        subscriber = hub.subscribe(asyncio.get_running_loop(), wake, page)
        if subscriber is None:
            await send({"type": "websocket.close", "code": 1013})  # before accepting: HTTP 403
            return
        try:
            await self.serve(subscriber, wake, receive, send)
        finally:
            hub.unsubscribe(subscriber)

    async def serve(self, subscriber, wake, receive, send):
        from explorer.trace.connection import TRACE_STARTED

        state = {"sent": 0, "acked": 0, "gone": False}
        unsent = probe(send)
        await send({"type": "websocket.accept"})
        hello = {
            "type": "hello",
            "started": iso(TRACE_STARTED),
            "buffer": BUFFER_RECORDS,
            "window": WINDOW,
            "panels": MAX_PANELS,
        }
        await send({"type": "websocket.send", "text": json.dumps(hello)})
        reader = asyncio.ensure_future(self.read(receive, state, wake))
        try:
            while not state["gone"]:
                await wake.wait()
                wake.clear()
                while not state["gone"] and state["sent"] - state["acked"] < WINDOW:
                    if unread(
                        unsent()
                    ):  # acknowledged or not, the server still holds it: the page has not read it
                        wake.set()  # look again after the pause: the records wait in the page's buffer
                        await asyncio.sleep(UNREAD_PAUSE)
                        break
                    lines, dropped = subscriber.take()
                    if not lines and not dropped:
                        break
                    state["sent"] += 1
                    text = (
                        f'{{"type": "records", "batch": {state["sent"]}, "dropped": {dropped}, '
                        f'"records": [{", ".join(lines)}]}}'
                    )
                    await send({"type": "websocket.send", "text": text})
        finally:
            reader.cancel()

    async def read(self, receive, state, wake):
        """The page's acknowledgements, until it goes."""
        try:
            with contextlib.suppress(Exception):  # a server that fails its receive: the page is gone
                while (event := await receive()).get("type") == "websocket.receive":  # not disconnect
                    ack = acknowledged(event)
                    if ack is not None:
                        state["acked"] = max(state["acked"], min(ack, state["sent"]))
                        wake.set()
        finally:
            state["gone"] = True
            wake.set()
