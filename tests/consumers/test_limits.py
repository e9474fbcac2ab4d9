"""What a client can make the server hold: the budgets alone (on a clock of our own), and in the consumers."""

import unicodedata

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import given
from hypothesis import strategies as st

from consumers import limits as budget
from consumers.actions import Note, Send, Sleep
from consumers.core import ExplorerCore, number
from consumers.limits import PAUSED, SYNC_THREAD, ConnectionLimits, Holds
from explorer.asgi import application
from tests.explorer.test_properties import PROPERTIES


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def limited(clock, holds=None, unsent=None):
    return ConnectionLimits(
        sleeping=SYNC_THREAD, blocking=SYNC_THREAD, unsent=unsent, holds=holds or Holds(clock), clock=clock
    )


def test_one_long_command_then_as_long_a_rest():
    clock = Clock()
    one = limited(clock)
    assert one.hold("sleep", 2) is None
    clock.now += 2  # the next command comes the moment the first one ends, as queued ones do
    assert "may again in 2.0 s" in one.hold("block", 1)
    clock.now += 2
    assert one.hold("block", 1) is None


def test_all_connections_together_hold_a_shared_thread_at_most_the_share():
    clock = Clock()
    holds = Holds(clock)
    first, second, third = (limited(clock, holds) for _ in range(3))
    assert first.hold("sleep", 3) is None
    refusal = second.hold("sleep", 3)
    assert "have been held 3.0 s of the last 10 s" in refusal
    assert third.hold("sleep", 1) is None  # 3 + 1 is within the 4 s share
    clock.now += budget.HOLD_WINDOW + 4  # the window has moved on
    assert second.hold("sleep", 3) is None


def test_stores_and_reads_are_held_to_the_share_at_what_the_last_ones_took():
    """3,000 /say at once all queued onto the sync thread (45 s of it, in a hostile-client review):
    each reserves what the last few took, and past the share the rest are refused, not queued."""
    clock = Clock()
    holds = Holds(clock)
    cost = budget.DatabaseCost()
    connections = [ConnectionLimits(holds=holds, clock=clock, database_cost=cost) for _ in range(30)]
    granted = sum(each.database() is None for each in connections * 100)  # 3,000 at once
    share = budget.HOLD_SHARE
    assert granted == pytest.approx(share / budget.DatabaseCost.INITIAL, abs=1)
    assert "have been held 4.0 s of the last 10 s" in connections[0].database()
    clock.now += budget.HOLD_WINDOW * 2  # the window has moved on; the stores took 50 ms each
    for _ in range(50):
        connections[0].database_took(0.2)
    assert cost.estimate == budget.DatabaseCost.LARGEST  # a slow moment counts, within bounds
    granted = sum(each.database() is None for each in connections * 100)
    assert granted == pytest.approx(share / budget.DatabaseCost.LARGEST, abs=1)


def test_what_holds_nothing_is_never_refused():
    clock = Clock()
    async_limits = ConnectionLimits(sleeping=None, blocking=None, holds=Holds(clock), clock=clock)
    for _ in range(5):
        assert async_limits.hold("sleep", 30) is None


def test_a_burst_stops_when_the_client_has_not_read_enough():
    waiting = {"bytes": 0}
    one = limited(Clock(), unsent=lambda: waiting["bytes"])
    assert one.send(1024) is None
    waiting["bytes"] = budget.MAX_UNSENT + 1
    assert "MiB are waiting for this client to read them" in one.send(1024)


def test_a_burst_stops_when_all_clients_together_have_not_read_enough():
    share = budget.MAX_UNSENT_TOTAL // 9 + 1  # each one under its own limit
    crowd = [limited(Clock(), unsent=lambda: share) for _ in range(9)]
    refusal = crowd[0].send(budget.CHECK_EVERY)
    assert "all connections together" in refusal


def test_a_burst_stops_when_the_server_stops_writing():
    one = limited(Clock(), unsent=lambda: PAUSED)
    assert "back-pressure" in one.send(budget.CHECK_EVERY)


def test_where_the_server_does_not_show_its_buffers_a_rate_applies():
    clock = Clock()
    one = limited(clock, unsent=lambda: None)
    sent = 0
    while (refusal := one.send(budget.CHECK_EVERY)) is None:
        sent += budget.CHECK_EVERY
    assert sent <= budget.MAX_UNSENT
    assert "does not show what it holds" in refusal
    clock.now += budget.HOLD_WINDOW + 1
    assert one.send(budget.CHECK_EVERY) is None


def test_the_core_stops_a_burst_with_an_error_and_a_note():
    refusals = iter([None, None, "enough"])
    stub = ConnectionLimits()
    stub.send = lambda size, paced=False: None if paced else next(refusals)  # the burst's own checks
    core = ExplorerCore({"type": "websocket", "query_string": b""}, limits=stub)
    actions = list(core.receive({"type": "websocket.receive", "text": "/burst 5 8"}))
    assert [a.event["text"] for a in actions if isinstance(a, Send)] == [
        "1/5 ....",
        "2/5 ....",
        "error: /burst stopped after 2 of 5 messages: enough",
    ]
    assert Note("/burst stopped after 2 of 5 messages: enough") in actions


def test_a_refused_delay_accepts_at_once_and_says_why():
    clock = Clock()
    holds = Holds(clock)
    limited(clock, holds).hold("sleep", 4)  # someone else holds the thread now
    core = ExplorerCore({"type": "websocket", "query_string": b"delay=2"}, limits=limited(clock, holds))
    actions = core.connect()
    assert not [a for a in actions if isinstance(a, Sleep)]
    refusal = "error: ?delay=2 refused: the sync thread and the event loop have been held"
    assert actions[-1].event["text"].startswith(refusal)


def test_rooms_per_connection_are_capped():
    core = ExplorerCore({"type": "websocket", "query_string": b""})
    for n in range(budget.MAX_ROOMS):
        core.joined(f"r{n}")
    [reply] = core.receive({"type": "websocket.receive", "text": "/join one-more"})
    assert (
        reply.event["text"]
        == f"error: a connection may be in {budget.MAX_ROOMS} rooms at most; /leave one first"
    )


@pytest.mark.parametrize("name", ["١٢٣", "room²", "ⅻ"])
def test_room_names_are_ascii_as_the_message_says(name):
    core = ExplorerCore({"type": "websocket", "query_string": b""})
    [reply] = core.receive({"type": "websocket.receive", "text": f"/join {name}"})
    assert reply.event["text"].startswith("error: room names are ASCII letters, digits")


# Every character Unicode calls a digit or a number, that is not an ASCII digit.
NOT_ASCII_DIGITS = st.characters(categories=("Nd", "No", "Nl")).filter(lambda c: not "0" <= c <= "9")


@PROPERTIES
@given(st.text(st.one_of(NOT_ASCII_DIGITS, st.sampled_from("0123456789.")), min_size=1, max_size=8))
def test_only_ascii_digits_are_numbers(word):
    value = number(word, 0, 10**9, whole=False)
    has_other = any(not ("0" <= c <= "9" or c == ".") for c in word)
    if has_other:
        assert value is None
    core = ExplorerCore({"type": "websocket", "query_string": b""})
    for command in (f"/burst {word}", f"/burst 2 {word}", f"/sleep {word}", f"/close {word}"):
        for action in core.receive({"type": "websocket.receive", "text": command}):
            assert isinstance(action, (Send, Sleep, Note))  # never an exception
    assert all(unicodedata.category(c) in ("Nd", "No", "Nl", "Po") for c in word)


async def test_long_commands_sent_in_one_go_run_once_and_the_rest_are_refused(endpoint, trace):
    budget.HOLDS.spans.clear()
    client = WebsocketCommunicator(application, f"/ws/{endpoint}/")
    await client.connect()
    for _ in range(3):
        await client.send_to(text_data="/block 0.3")
    replies = [await client.receive_from(timeout=5) for _ in range(3)]
    assert replies[0] == "blocked 0.3 s"
    assert all(r.startswith("error: /block 0.3 refused: this connection held") for r in replies[1:])
    await client.disconnect()
    notes = [r["note"] for r in trace.records() if r["kind"] == "note"]
    assert len(notes) == 2 and all(n.startswith("/block 0.3 refused: this connection held") for n in notes)


def test_the_sync_thread_and_the_event_loop_share_one_budget():
    """A handshake waits for both, one after the other (the event loop to read it, the sync thread for
    the auth stack and channels' hop): holding each for the whole share in turn kept one waiting 7.7 s,
    past daphne's 5 s timeout. Together they are held at most the share."""
    clock = Clock()
    holds = Holds(clock)
    sync = ConnectionLimits(sleeping=SYNC_THREAD, blocking=SYNC_THREAD, holds=holds, clock=clock)
    loop = ConnectionLimits(sleeping=None, blocking=budget.EVENT_LOOP, holds=holds, clock=clock)
    assert sync.hold("sleep", 3.9) is None
    refusal = loop.hold("block", 3.9)
    assert refusal and "the sync thread and the event loop have been held 3.9 s" in refusal
    assert loop.hold("block", 0.1) is None  # 4 s in all


def test_rooms_of_all_connections_together_are_capped(monkeypatch):
    """A probe put 300 connections in 100 rooms each: the in-memory layer walks every membership on each
    send and receive, and an echo elsewhere took 217 ms. All connections together have a budget too."""
    import weakref

    monkeypatch.setattr(budget, "WATCHED", weakref.WeakSet())  # these connections alone
    cores = []
    for _ in range(budget.MAX_ROOMS_TOTAL // budget.MAX_ROOMS):
        core = ExplorerCore({"type": "websocket", "query_string": b""})
        for n in range(budget.MAX_ROOMS):
            core.joined(f"r{n}")
        cores.append(core)
    late = ExplorerCore({"type": "websocket", "query_string": b""})
    [reply] = late.receive({"type": "websocket.receive", "text": "/join lobby"})
    assert reply.event["text"].startswith(
        f"error: all connections together are in {budget.MAX_ROOMS_TOTAL:,} rooms"
    )
    cores[0].left("r0")  # one leaves: there is room again
    assert late.receive({"type": "websocket.receive", "text": "/join lobby"})[0].group == "lobby"


def test_a_message_on_every_one_of_many_connections_looks_at_each_buffer_a_few_times(monkeypatch):
    """The bench's scale scenario (9,000 connections, one echo each) stalled daphne past the client's
    ping timeout: each connection's first reply looked at every connection's buffer, 81 million looks.
    All connections together are looked at once per CHECK_EVERY bytes asked for in the process."""
    import weakref

    monkeypatch.setattr(budget, "WATCHED", weakref.WeakSet())
    looks = {"count": 0}

    def unsent():
        looks["count"] += 1
        return 0

    connections = [ConnectionLimits(unsent=unsent) for _ in range(300)]
    for each in connections:
        assert each.reply(1) is None
    assert looks["count"] < 3 * len(connections)


def test_a_long_burst_holds_its_thread_within_the_shared_budget_then_rests():
    """/burst sends from its handler, holding its thread while it lasts: 10,000 messages held the sync
    thread 5-7 s under daphne, outside the budget every other hold keeps to. A short burst holds nothing
    worth counting; a long one takes the budget as it goes, stops with an error when it is spent, and its
    connection rests as long as it held before it may hold again."""
    clock = Clock()
    core = ExplorerCore({"type": "websocket", "query_string": b""}, limits=limited(clock))
    sent, stopped = 0, None
    for action in core.receive({"type": "websocket.receive", "text": "/burst 10000 1"}):
        if isinstance(action, Send) and not action.event["text"].startswith("error: "):
            sent += 1
            clock.now += 0.001  # each message takes a millisecond of its thread
        elif isinstance(action, Send):
            stopped = action.event["text"]
    assert stopped is not None and stopped.startswith(f"error: /burst stopped after {sent:,} of 10,000")
    assert "have been held" in stopped
    held = sent * 0.001
    share = budget.hold_share()
    assert share - budget.BURST_SLICE <= held - budget.BURST_FREE <= share + budget.BURST_SLICE
    spent = list(core.receive({"type": "websocket.receive", "text": "/burst 100 1"}))
    assert "have been held" in spent[-1].event["text"]  # the budget is spent: not even a short one
    clock.now += budget.HOLD_WINDOW + 2 * held  # the budget is back, and its rest is over


def test_a_short_burst_owes_no_rest_and_a_long_one_pays_it_after_its_free_stretch():
    clock = Clock()
    core = ExplorerCore({"type": "websocket", "query_string": b""}, limits=limited(clock))
    list(core.receive({"type": "websocket.receive", "text": "/sleep 1"}))  # a hold, and a rest owed after
    short = list(core.receive({"type": "websocket.receive", "text": "/burst 100 1"}))
    assert len(short) == 100 and all(not a.event["text"].startswith("error") for a in short)
    sent = []
    for action in core.receive({"type": "websocket.receive", "text": "/burst 10000 1"}):
        sent.append(action)
        clock.now += 0.001
    assert "a moment ago" in sent[-1].event["text"]
    messages = len([a for a in sent if isinstance(a, Send)]) - 1  # less the error
    assert abs(messages - budget.BURST_FREE / 0.001) <= 2  # its free stretch, a millisecond each


def test_short_bursts_back_to_back_spend_the_budget_too():
    """Each burst's first BURST_FREE asks for nothing, but is counted at its end: bursts just under it,
    one after another, stop once the shared budget is spent."""
    clock = Clock()
    core = ExplorerCore({"type": "websocket", "query_string": b""}, limits=limited(clock))
    sent = 0
    for _ in range(100):
        for action in core.receive({"type": "websocket.receive", "text": "/burst 199 1"}):
            if not isinstance(action, Send):
                continue
            if action.event["text"].startswith("error: "):
                assert "have been held" in action.event["text"]
                break
            sent += 1
            clock.now += 0.001
    held = sent * 0.001
    assert held <= budget.hold_share() + budget.BURST_FREE
