"""The pure core: what it decides for each event, with no consumer or server around it."""

import pytest

from consumers.core import (
    DeliberateError,
    ExplorerCore,
    Send,
    Stop,
    choose_subprotocol,
)


def core(query=b"", subprotocols=()):
    return ExplorerCore({"type": "websocket", "query_string": query, "subprotocols": list(subprotocols)})


def text_of(actions):
    [action] = actions
    assert action.event["type"] == "websocket.send"
    return action.event["text"]


@pytest.mark.parametrize(
    ("offered", "wanted", "chosen"),
    [
        (["a", "b"], "b", "b"),
        (["a", "b"], None, "a"),
        (["a", "b"], "zzz", "a"),
        ([], "b", None),
    ],
)
def test_subprotocol_is_the_one_asked_for_if_offered_else_the_first(offered, wanted, chosen):
    assert choose_subprotocol(offered, wanted) == chosen


def test_connect_accepts_with_the_chosen_subprotocol():
    assert core(b"subprotocol=b", ["a", "b"]).connect() == [
        Send({"type": "websocket.accept", "subprotocol": "b"})
    ]
    assert core().connect() == [Send({"type": "websocket.accept"})]


def test_reject_closes_before_accepting():
    assert core(b"reject=1").connect() == [Send({"type": "websocket.close"})]


def test_raise_option_fails_the_connect_handler():
    with pytest.raises(DeliberateError):
        core(b"raise=1").connect()


def test_text_and_bytes_are_echoed_in_kind():
    c = core()
    c.connect()
    assert c.receive({"type": "websocket.receive", "text": "hi"}) == [
        Send({"type": "websocket.send", "text": "hi"})
    ]
    assert c.receive({"type": "websocket.receive", "bytes": b"\x00hi"}) == [
        Send({"type": "websocket.send", "bytes": b"\x00hi"})
    ]


@pytest.mark.parametrize("text", ["/path/to/file", "/ close 4000", "hello /close 4000", "", "/Close"])
def test_text_that_is_not_a_command_is_echoed(text):
    c = core()
    assert text_of(c.receive({"type": "websocket.receive", "text": text})) == text


@pytest.mark.parametrize(
    ("command", "event"),
    [
        ("/close", {"type": "websocket.close", "code": 1000}),
        ("/close 4000", {"type": "websocket.close", "code": 4000}),
        ("/close 3000 bye now", {"type": "websocket.close", "code": 3000, "reason": "bye now"}),
        ("/close 4999\tgone", {"type": "websocket.close", "code": 4999, "reason": "gone"}),
        (
            "/close 1000 " + "é" * 61 + "x",
            {"type": "websocket.close", "code": 1000, "reason": "é" * 61 + "x"},
        ),
    ],
)
def test_close_sends_the_code_and_reason(command, event):
    c = core()
    assert c.receive({"type": "websocket.receive", "text": command}) == [Send(event)]
    # Once closing, frames still in flight are not answered.
    assert c.receive({"type": "websocket.receive", "text": "late"}) == []


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("/close abc", "close code must be a whole number, got 'abc'"),
        ("/close 1001", "close code 1001 cannot be sent by an application through daphne"),
        ("/close 2999", "close code 2999 cannot be sent"),
        ("/close 5000", "close code 5000 cannot be sent"),
        ("/close 999", "close code 999 cannot be sent"),
        ("/close 4000 " + "é" * 62, "close reason is 124 bytes of UTF-8; the limit is 123"),
        ("/nope", "unknown command /nope; try /help"),
    ],
)
def test_malformed_command_gets_an_error_and_the_connection_stays_open(command, error):
    c = core()
    c.connect()
    reply = text_of(c.receive({"type": "websocket.receive", "text": command}))
    assert reply.startswith("error: ")
    assert error in reply
    assert not c.closing
    assert text_of(c.receive({"type": "websocket.receive", "text": "still open"})) == "still open"


def test_help_lists_every_command():
    reply = text_of(core().receive({"type": "websocket.receive", "text": "/help"}))
    for usage in ("/help", "/close [CODE [REASON]]", "/raise", "?reject=1", "?subprotocol=NAME", "?raise=1"):
        assert usage in reply


def test_raise_command_raises():
    with pytest.raises(DeliberateError):
        core().receive({"type": "websocket.receive", "text": "/raise"})


def test_disconnect_stops_the_consumer():
    assert core().disconnect({"type": "websocket.disconnect", "code": 1000}) == [Stop()]
