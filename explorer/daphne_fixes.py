"""Four fixes to daphne 4.2, made as the explorer starts (``install``, from the app's ``ready``).

Each replaces or wraps a piece of daphne's internals as 4.2 has them, so on
any other daphne they are not made: the explorer says so once and leaves
daphne as it is.

1. Failures are explained with a close frame. autobahn, under daphne, fails
   a connection by dropping it (its ``failByDrop`` option), so a client that
   breaks a limit sees only an abnormal closure (1006) and never learns why.
   The one a user meets first is daphne's message size limit
   (``websocket_max_message_size``, 1 MiB by default): with this, a message
   over it gets close code 1009 (message too big) and its reason, as RFC 6455
   intends. daphne has no setting for the option, so it is set on daphne's
   WebSocket factory as the server creates it.

2. Stopping with connections open works. daphne's ``kill_all_applications``
   reads ``details["application_instance"]`` for every connection, but a
   connection whose application has already ended has none; the KeyError
   aborted the shutdown, the consumers were never cancelled, and the
   interpreter crashed (SIGSEGV) finalising their suspended coroutines at
   exit. This version skips those connections, and first closes each open
   WebSocket with 1001 (going away), so its client is told rather than
   dropped. Then it lets the sync thread finish what it is running: a sync
   handler cannot be cancelled, and one that sends after the event loop has
   stopped waits for it for ever in ``async_to_sync``, while the interpreter,
   exiting, waits for that thread: daphne never exits.

3. Stopping under ``manage.py runserver``'s autoreloader: daphne runs in a
   daemon thread of a child process with no signal handlers, and Ctrl-C
   ends the process around it. As the interpreter stops its threads (before
   the thread pools go), this stops daphne's reactor from the main thread
   and waits for it, so the stop above happens. The reloader's parent gives
   its child only 0.25 s on Ctrl-C and none on SIGTERM, so ``make run``
   runs with ``--noreload``.

4. What a client sends is held to a budget. daphne puts each message on an
   unbounded queue to the application, so while a handler runs (an
   AsyncConsumer's ``/sleep 30``) a client can make the server hold as much
   as it sends: 300 MiB in 1.6 s in a hostile-client review. Past
   ``MAX_UNREAD`` bytes that the application has not read yet, the
   connection is closed with 1008 (policy violation) and why, and what
   comes after is dropped; what was queued is still the application's. Past
   ``MAX_UNREAD_TOTAL`` for all connections together (many clients, each
   under its own budget), daphne reads nothing more from a client that
   sends, until the applications have read enough: those clients wait, as
   uvicorn makes them wait, and none is closed for what others sent.
   (uvicorn stops reading from a client its application has not caught up
   with, and hypercorn's queue is bounded.)
"""

import asyncio
import atexit
import contextlib
import logging
import threading
import weakref

import daphne
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import defer

from explorer.trace.server_notes import closing_all

logger = logging.getLogger("daphne.server")

WRITTEN_FOR = "4.2"  # the daphne whose code these fixes were read against

STOP_TIMEOUT = 10  # seconds exit waits for daphne to close its connections and end its consumers
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
MAX_UNREAD = 16 * 1024 * 1024  # bytes a client may have sent that its application has not read yet
UNREAD_EVENT = 200  # bytes an event holds besides its payload: many tiny messages weigh too
UNREAD_REASON = f"more than {MAX_UNREAD // (1024 * 1024)} MiB sent that the application has not read".encode()
MAX_UNREAD_TOTAL = 64 * 1024 * 1024  # all clients together; past it, the senders are read no more for now
CLOSE_TIMEOUT = 1.0  # seconds clients have to answer the server's close before their consumers are cancelled
# Seconds a sync handler has to finish before the consumers are cancelled: longer than the
# longest hold the explorer allows (consumers.limits), and well inside STOP_TIMEOUT.
SYNC_TIMEOUT = 6.0
ENDING_GRACE = 0.5  # seconds applications get to end by themselves once the sync thread is free


def install():
    if getattr(WebSocketFactory, "explorer_checked", False):
        return
    WebSocketFactory.explorer_checked = True
    if daphne.__version__.split(".")[:2] != WRITTEN_FOR.split("."):
        logging.getLogger(__name__).warning(
            "daphne %s is not the %s that explorer/daphne_fixes.py was written for: daphne is left as it "
            "is (a message over its size limit gets 1006, and stopping with connections open may hang)",
            daphne.__version__,
            WRITTEN_FOR,
        )
        return
    original_init = WebSocketFactory.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807 - replaces the factory's own
        original_init(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = __init__
    created = WebSocketProtocol.applicationCreateWorked
    received = WebSocketProtocol.onMessage

    def applicationCreateWorked(self, application_queue):  # noqa: N802 - daphne's own name
        if type(application_queue) is asyncio.Queue:  # daphne's; its application holds its get already
            counted = UnreadQueue.counting(application_queue)
            ending = self.server.connections.get(self, {}).get("application_instance")
            if ending is not None:  # what it still holds when its application has ended is no one's
                ending.add_done_callback(lambda _: UnreadQueue.forget(counted))
        return created(self, application_queue)

    def onMessage(self, payload, isBinary):  # noqa: N802, N803 - autobahn's own names
        queue = getattr(self, "application_queue", None)
        if isinstance(queue, UnreadQueue) and queue.counted[0] + len(payload) + UNREAD_EVENT > MAX_UNREAD:
            if self.state == self.STATE_OPEN:
                # sendCloseFrame: autobahn's sendClose takes only an application's codes.
                self.sendCloseFrame(code=POLICY_VIOLATION, reasonUtf8=UNREAD_REASON)
            return
        handled = received(self, payload, isBinary)
        if isinstance(queue, UnreadQueue) and UnreadQueue.total > MAX_UNREAD_TOTAL:
            UnreadQueue.hold_back(self)
        return handled

    WebSocketProtocol.applicationCreateWorked = applicationCreateWorked
    WebSocketProtocol.onMessage = onMessage
    Server.kill_all_applications = kill_all_applications
    server_run = Server.run

    def run(self):  # daphne's own, noting which thread runs the reactor
        running.append(threading.current_thread())
        try:
            return server_run(self)
        finally:
            running.remove(threading.current_thread())

    Server.run = run
    # Before the interpreter stops the thread pools channels dispatches through
    # (concurrent.futures registers its own stop the same way, earlier, so it runs later).
    register = getattr(threading, "_register_atexit", atexit.register)
    register(stop_at_exit)


running = []  # the threads running daphne's reactor in this process


class UnreadQueue(asyncio.Queue):
    """daphne's queue to one application, counting the bytes on it that the application has not read, and
    those on every such queue. On daphne's event loop only (``forget`` runs there too, but for a queue
    collected elsewhere, which holds nothing by then unless its application never ended)."""

    total = 0  # on every queue
    counted: list[int]  # [on this one]: a list, which outlives the queue for its finalizer
    held_back: "weakref.WeakSet[WebSocketProtocol]" = weakref.WeakSet()  # clients not read for now

    def _put(self, item):
        held = weight(item)
        self.counted[0] += held
        UnreadQueue.total += held
        super()._put(item)

    def _get(self):
        item = super()._get()
        held = weight(item)
        self.counted[0] -= held
        UnreadQueue.total -= held
        UnreadQueue.read_again()
        return item

    @staticmethod
    def counting(queue):
        """daphne's ``queue``, counted from now on (and what it holds forgotten when it goes)."""
        queue.__class__ = UnreadQueue
        queue.counted = [0]
        weakref.finalize(queue, UnreadQueue.forget, queue.counted)
        return queue.counted

    @staticmethod
    def forget(counted):
        """A queue whose application has ended: what it holds will never be read."""
        UnreadQueue.total -= counted[0]
        counted[0] = 0
        UnreadQueue.read_again()

    @staticmethod
    def hold_back(protocol):
        """Read nothing more from this client for now (its socket's buffers fill, and it waits)."""
        if protocol not in UnreadQueue.held_back and protocol.transport is not None:
            UnreadQueue.held_back.add(protocol)
            protocol.transport.pauseProducing()

    @staticmethod
    def read_again():
        if UnreadQueue.held_back and UnreadQueue.total <= MAX_UNREAD_TOTAL:
            waiting = list(UnreadQueue.held_back)
            UnreadQueue.held_back.clear()
            for protocol in waiting:
                with contextlib.suppress(Exception):  # a client gone meanwhile
                    protocol.transport.resumeProducing()


def weight(event):
    """What an event holds, in the bytes its client sent (UTF-8, for a text) and the event's own."""
    payload = event.get("bytes") or event.get("text") or b""
    if isinstance(payload, str) and not payload.isascii():
        return len(payload.encode(errors="surrogatepass")) + UNREAD_EVENT
    return len(payload) + UNREAD_EVENT


def stop_at_exit():
    """daphne in another thread (the autoreloader's child): stop its reactor, and wait for it."""
    threads = [thread for thread in running if thread is not threading.current_thread()]
    if not threads:
        return
    from twisted.internet import reactor

    with contextlib.suppress(Exception):  # already stopping, or gone
        reactor.callFromThread(reactor.stop)
    for thread in threads:
        thread.join(timeout=STOP_TIMEOUT)


def kill_all_applications(self):
    """Close every open WebSocket (1001), give the clients a moment to answer, then cancel what still runs."""
    closing = [protocol for protocol in self.connections if isinstance(protocol, WebSocketProtocol)]
    closing = [protocol for protocol in closing if protocol.state == protocol.STATE_OPEN]
    closing_all.set()  # the trace tells the 1001s that come back from a client's own
    for protocol in closing:
        with contextlib.suppress(Exception):  # a connection going away by itself meanwhile
            # sendCloseFrame: autobahn's sendClose takes only an application's codes (1000, 3000-4999).
            protocol.sendCloseFrame(code=GOING_AWAY, reasonUtf8=b"server shutting down")
    waiting = until_closed(closing, CLOSE_TIMEOUT)
    waiting.addCallback(lambda _: until_sync_thread_free(SYNC_TIMEOUT))
    # A sync consumer told of the close while its handler still ran has its disconnect handler
    # queued behind it: a moment to run it, so it stops by itself rather than be cancelled.
    waiting.addCallback(lambda _: until_applications_end(self, ENDING_GRACE))
    waiting.addCallback(lambda _: cancel_applications(self))
    return waiting


def until_applications_end(server, timeout):
    """A Deferred that fires once every application has ended by itself, or after ``timeout``."""
    pending = still_running(server)
    if not pending:
        return defer.succeed(None)
    return defer.Deferred.fromFuture(asyncio.ensure_future(asyncio.wait(pending, timeout=timeout)))


def still_running(server):
    """The application instances still running: a connection whose application has ended may have none."""
    instances = (details.get("application_instance") for details in server.connections.values())
    return [instance for instance in instances if instance is not None and not instance.done()]


def until_sync_thread_free(timeout):
    """A Deferred that fires once the sync thread has run what was queued on it, or after ``timeout``.

    asgiref runs thread-sensitive sync code on one thread, in order: a no-op
    queued there runs once every handler ahead of it has ended.
    """
    from asgiref.sync import sync_to_async

    turn = asyncio.ensure_future(asyncio.wait_for(sync_to_async(lambda: None)(), timeout))
    waiting = defer.Deferred.fromFuture(turn)
    waiting.addErrback(lambda failure: None)  # still held: cancel anyway
    return waiting


def until_closed(protocols, timeout):
    """A Deferred that fires once every protocol has closed, or after ``timeout`` seconds."""
    from twisted.internet import reactor, task

    deadline = reactor.seconds() + timeout

    def check():
        if reactor.seconds() < deadline and any(p.state != p.STATE_CLOSED for p in protocols):
            return task.deferLater(reactor, 0.05, check)
        return None

    return defer.maybeDeferred(check)


def cancel_applications(server):
    """Cancel every application still running, and have Twisted wait until they have ended."""
    pending = still_running(server)
    for instance in pending:
        instance.cancel()
    logger.info("Killed %i pending application instances", len(pending))
    waiting = defer.Deferred.fromFuture(asyncio.gather(*pending))
    waiting.addErrback(lambda failure: None)
    return waiting
