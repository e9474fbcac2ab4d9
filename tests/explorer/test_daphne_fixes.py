"""``explorer/daphne_fixes.py``: made on the daphne it was written for, and only there."""

import logging

import daphne
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory

from explorer import daphne_fixes


def test_another_daphne_is_left_as_it_is_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(daphne, "__version__", "4.3.0")
    monkeypatch.setattr(WebSocketFactory, "explorer_checked", False)
    run, kill, init = Server.run, Server.kill_all_applications, WebSocketFactory.__init__
    with caplog.at_level(logging.WARNING, logger="explorer.daphne_fixes"):
        daphne_fixes.install()
        daphne_fixes.install()
    assert (Server.run, Server.kill_all_applications, WebSocketFactory.__init__) == (run, kill, init)
    [warning] = [r for r in caplog.records if r.name == "explorer.daphne_fixes"]
    assert "daphne 4.3.0 is not the 4.2" in warning.getMessage()


def test_daphne_4_2_is_fixed():
    assert daphne.__version__.startswith(f"{daphne_fixes.WRITTEN_FOR}.")
    assert Server.kill_all_applications is daphne_fixes.kill_all_applications


class Transport:
    def __init__(self):
        self.reading = True

    def pauseProducing(self):  # noqa: N802 - Twisted's
        self.reading = False

    def resumeProducing(self):  # noqa: N802 - Twisted's
        self.reading = True


class Client:
    """What daphne's ``onMessage``, and the fix around it, read of a WebSocket protocol."""

    muted = False
    client_addr = ("127.0.0.1", 1)
    STATE_OPEN = state = 1

    def __init__(self):
        import asyncio

        self.application_queue = asyncio.Queue()
        daphne_fixes.UnreadQueue.counting(self.application_queue)
        self.transport = Transport()

    def send(self, size):
        from daphne.ws_protocol import WebSocketProtocol

        WebSocketProtocol.onMessage(self, b"x" * size, True)  # no sendCloseFrame: a close would raise


def test_past_what_all_applications_may_leave_unread_the_client_that_sends_is_read_no_more_for_now(
    monkeypatch,
):
    """Each client under its own budget, all of them past the total: the one whose message takes them past
    it is read no more (it waits, as uvicorn makes a client wait), none is closed, and it is read again
    once the applications have read enough, or an application has ended with its queue unread."""
    unread = daphne_fixes.UnreadQueue
    monkeypatch.setattr(unread, "total", 0)
    monkeypatch.setattr(daphne_fixes, "MAX_UNREAD_TOTAL", 10_000)
    early, late = Client(), Client()
    for _ in range(6):
        early.send(1000)
    assert early.transport.reading and unread.total == 6 * (1000 + daphne_fixes.UNREAD_EVENT)
    for _ in range(4):
        late.send(1000)
    assert not late.transport.reading and early.transport.reading  # its message is queued, not dropped
    assert late.application_queue.qsize() == 4
    early.application_queue.get_nowait()  # its application reads: not enough yet
    assert not late.transport.reading
    early.application_queue.get_nowait()
    assert late.transport.reading and unread.total <= 10_000
    late.send(2000)
    assert not late.transport.reading
    unread.forget(early.application_queue.counted)  # its application has ended, four messages unread
    assert late.transport.reading and unread.total == 4 * (1000 + daphne_fixes.UNREAD_EVENT) + 2200


def test_a_text_message_weighs_its_utf8_bytes_as_the_client_sent_them():
    """The budget is in the bytes a client sent: a text of characters past ASCII weighs up to four bytes
    each, not one (it was counted in characters, a quarter of what a client could hold)."""
    event = {"type": "websocket.receive", "text": "é" * 1000}
    assert daphne_fixes.weight(event) == 2000 + daphne_fixes.UNREAD_EVENT
    assert (
        daphne_fixes.weight({"type": "websocket.receive", "text": "e" * 1000})
        == 1000 + daphne_fixes.UNREAD_EVENT
    )
    assert (
        daphne_fixes.weight({"type": "websocket.receive", "bytes": b"\xff" * 10})
        == 10 + daphne_fixes.UNREAD_EVENT
    )
