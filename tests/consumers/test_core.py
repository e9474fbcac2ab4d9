"""The pure core: what it decides for each event, with no consumer or server around it."""

import pytest

from consumers import actions
from consumers.core import MAX_BURST_TOTAL, MAX_HISTORY, MAX_SAID, ExplorerCore, choose_subprotocol


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
        actions.Send({"type": "websocket.accept", "subprotocol": "b"})
    ]
    assert core().connect() == [actions.Send({"type": "websocket.accept"})]


def test_reject_closes_before_accepting():
    assert core(b"reject=1").connect() == [actions.Send({"type": "websocket.close"})]


def test_raise_option_fails_the_connect_handler_after_its_delay():
    assert core(b"raise=1").connect() == [actions.Fail("?raise=1: an exception before accepting")]
    assert core(b"raise=1&delay=2").connect() == [
        actions.Sleep(2.0),
        actions.Fail("?raise=1: an exception before accepting"),
    ]


def test_deny_answers_the_handshake_with_that_status_and_stops():
    planned = core(b"deny=401").connect()
    assert [a.event["type"] for a in planned[:2]] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert planned[0].event["status"] == 401
    assert planned[1].event["body"] == b"denied with 401 (?deny=401)\n"
    assert planned[2] == actions.Stop()


@pytest.mark.parametrize("status", [b"200", b"600", b"abc", b"4\xc2\xb2"])
def test_deny_takes_only_an_error_status(status):
    actions = core(b"deny=" + status).connect()
    assert actions[0].event["type"] == "websocket.accept"
    assert actions[1].event["text"].startswith("error: ?deny= must be a whole number from 400 to 599")


def test_stop_stops_without_an_answer():
    assert core(b"stop=1").connect() == [actions.Stop()]


@pytest.mark.parametrize(("command", "payload"), [("/empty", {"text": ""}), ("/empty bytes", {"bytes": b""})])
def test_empty_sends_an_empty_message(command, payload):
    [send] = core().receive({"type": "websocket.receive", "text": command})
    assert send.event == {"type": "websocket.send", **payload}


def test_text_and_bytes_are_echoed_in_kind():
    c = core()
    c.connect()
    assert c.receive({"type": "websocket.receive", "text": "hi"}) == [
        actions.Send({"type": "websocket.send", "text": "hi"})
    ]
    assert c.receive({"type": "websocket.receive", "bytes": b"\x00hi"}) == [
        actions.Send({"type": "websocket.send", "bytes": b"\x00hi"})
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
    assert c.receive({"type": "websocket.receive", "text": command}) == [actions.Send(event)]
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
        ("/sleep", "/sleep takes SECONDS from 0 to 30, got ''"),
        ("/sleep 31", "/sleep takes SECONDS from 0 to 30, got '31'"),
        ("/sleep -1", "from 0 to 30"),
        ("/sleep nan", "from 0 to 30, got 'nan'"),
        ("/sleep inf", "from 0 to 30, got 'inf'"),
        ("/block soon", "/block takes SECONDS from 0 to 30, got 'soon'"),
        ("/burst", "usage: /burst N [SIZE]"),
        ("/burst 0", "/burst N must be a whole number from 1 to 10,000, got '0'"),
        ("/burst 10001", "from 1 to 10,000, got '10001'"),
        ("/burst 2 0", "/burst SIZE must be a whole number from 1 to 1,048,576, got '0'"),
        ("/burst 2 1048577", "from 1 to 1,048,576"),
        ("/burst 1e3", "got '1e3'"),
        ("/burst 10000 1048576", f"is 10,485,760,000 bytes; the limit is {MAX_BURST_TOTAL:,} in one burst"),
        ("/burst 1 2 3", "usage: /burst N [SIZE]"),
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
    for name, (usage, _) in ExplorerCore.COMMANDS.items():
        assert f"/{name}" in usage
        assert usage in reply
    for option in ("?reject=1", "?subprotocol=NAME", "?delay=SECONDS", "?header=NAME:VALUE", "?raise=1"):
        assert option in reply


def test_raise_command_fails_the_handler():
    assert core().receive({"type": "websocket.receive", "text": "/raise"}) == [
        actions.Fail("/raise: an exception in the handler")
    ]


def test_disconnect_stops_the_consumer():
    assert core().disconnect({"type": "websocket.disconnect", "code": 1000}) == [actions.Stop()]


def receive(c, text):
    return list(c.receive({"type": "websocket.receive", "text": text}))


def test_bytes_replies_with_a_binary_frame():
    assert receive(core(), "/bytes héllo") == [
        actions.Send({"type": "websocket.send", "bytes": "héllo".encode()})
    ]


def test_burst_sends_n_numbered_messages_of_exactly_size_bytes():
    sent = [action.event["text"] for action in receive(core(), "/burst 3 10")]
    assert sent == ["1/3 ......", "2/3 ......", "3/3 ......"]
    assert [len(text.encode()) for text in receive_texts(core(), "/burst 12 2")] == [2] * 12
    assert len(receive(core(), "/burst 5")) == 5


def receive_texts(c, text):
    return [action.event["text"] for action in receive(c, text)]


def test_burst_at_its_bounds_is_made_lazily():
    actions = core().receive({"type": "websocket.receive", "text": "/burst 10000 6000"})
    first = next(iter(actions))
    assert len(first.event["text"]) == 6000
    assert first.event["text"].startswith("1/10000 ")


@pytest.mark.parametrize(
    ("command", "action", "reply"),
    [("/sleep 0.5", actions.Sleep(0.5), "slept 0.5 s"), ("/block 2", actions.Block(2.0), "blocked 2 s")],
)
def test_sleep_and_block_wait_then_reply(command, action, reply):
    assert receive(core(), command) == [action, actions.Send({"type": "websocket.send", "text": reply})]


def test_sleep_and_block_accept_their_bounds():
    assert receive(core(), "/sleep 30")[0] == actions.Sleep(30.0)
    assert receive(core(), "/block 0")[0] == actions.Block(0.0)


def test_whoami_asks_the_consumer_and_formats_its_answer():
    c = core()
    assert receive(c, "/whoami") == [actions.Whoami()]
    [reply] = c.found({"thread": "MainThread", "event_loop_thread": True})
    assert '"thread": "MainThread"' in reply.event["text"]


def test_scope_replies_with_the_scope_as_json_with_credentials_redacted():
    import json

    scope = {
        "type": "websocket",
        "path": "/ws/ac/",
        "query_string": b"a=1",
        "headers": [(b"host", b"example"), (b"cookie", b"sessionid=secret")],
        "subprotocols": [],
    }
    from dataclasses import replace

    from explorer.trace.config import TraceConfig

    assert receive(ExplorerCore(scope), "/scope")[0].event["text"].startswith("error: /scope is off")
    [reply] = receive(ExplorerCore(scope, redaction=TraceConfig()), "/scope")
    shown = json.loads(reply.event["text"])
    assert shown["path"] == "/ws/ac/"
    assert shown["query_string"] == "a=1"
    assert ["host", "example"] in shown["headers"]
    assert ["cookie", "<redacted>"] in shown["headers"]
    assert "secret" not in reply.event["text"]
    [revealed] = receive(
        ExplorerCore(scope, redaction=replace(TraceConfig(), show_credentials=True)), "/scope"
    )
    assert "sessionid=secret" in revealed.event["text"]


def test_delay_sleeps_before_accepting():
    assert core(b"delay=0.25").connect() == [actions.Sleep(0.25), actions.Send({"type": "websocket.accept"})]
    assert core(b"delay=1&reject=1").connect() == [
        actions.Sleep(1.0),
        actions.Send({"type": "websocket.close"}),
    ]


def test_header_options_become_accept_headers():
    [accept] = core(b"header=X-Explorer:%20one&header=x-two:2").connect()
    assert accept.event["headers"] == [[b"x-explorer", b"one"], [b"x-two", b"2"]]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (b"delay=99", "?delay= takes SECONDS from 0 to 30, got '99'"),
        (b"delay=x", "got 'x'"),
        (b"header=novalue", "header must be NAME:VALUE with NAME an HTTP token, got 'novalue'"),
        (b"header=bad%20name:1", "got 'bad name:1'"),
        (b"header=Sec-WebSocket-Protocol:x", "belongs to the handshake itself"),
        (b"header=x-a:%01", "header x-a has a control character in its value"),
        (b"header=x-a:%E2%82%AC", "header x-a has a value that is not latin-1"),
    ],
)
def test_bad_connect_options_are_reported_after_accepting(query, error):
    accept, reply = core(query).connect()
    assert accept == actions.Send({"type": "websocket.accept"})
    assert reply.event["text"].startswith("error: ")
    assert error in reply.event["text"]


def test_rooms_join_say_and_leave_once_the_shell_says_it_is_done():
    c = ExplorerCore({"type": "websocket"}, name="sc#7")
    assert receive(c, "/join lobby") == [actions.Join("lobby")]
    assert c.joined("lobby") == [actions.Send({"type": "websocket.send", "text": "joined lobby"})]
    assert receive(c, "/say lobby hello there") == [
        actions.Publish(
            "lobby", {"type": "room.message", "room": "lobby", "sender": "sc#7", "text": "hello there"}
        ),
        actions.Store("lobby", "sc#7", "hello there"),
    ]
    assert receive(c, "/leave lobby") == [actions.Leave("lobby")]
    assert c.left("lobby") == [actions.Send({"type": "websocket.send", "text": "left lobby"})]
    assert c.rooms == {}


def test_a_failed_layer_call_changes_nothing_and_says_so():
    c = core()
    receive(c, "/join lobby")
    [reply] = c.layer_failed("group_add", "lobby", ConnectionRefusedError())
    assert reply.event["text"] == "error: group_add failed (ConnectionRefusedError); try again later"
    assert receive(c, "/join lobby") == [actions.Join("lobby")]  # not in it: join again


def test_a_room_message_is_passed_on_until_closing():
    c = core()
    message = {"type": "room.message", "room": "lobby", "sender": "ac#2", "text": "hi"}
    assert c.room_message(message) == [actions.Send({"type": "websocket.send", "text": "[lobby] ac#2: hi"})]
    c.disconnect({"type": "websocket.disconnect", "code": 1000})
    assert c.room_message(message) == []


def test_disconnect_leaves_every_room_one_at_a_time_then_stops():
    c = core()
    for room in ("a", "b.c", "d"):
        receive(c, f"/join {room}")
        c.joined(room)
    assert c.disconnect({"type": "websocket.disconnect", "code": 1000}) == [actions.Leave("a")]
    assert c.left("a") == [actions.Leave("b.c")]
    assert c.layer_failed("group_discard", "b.c", ConnectionRefusedError()) == [
        actions.Leave("d")
    ]  # nobody to tell
    assert c.left("d") == [actions.Stop()]


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (
            "/join",
            "room names are ASCII letters, digits, hyphen, underscore and period, under 100 characters",
        ),
        ("/join a b", "got 'a b'"),
        ("/join café", "got 'café'"),
        ("/join " + "x" * 100, "under 100 characters"),
        ("/join lobby", "already in room lobby"),
        ("/leave other", "not in room other"),
        ("/say other hi", "join other first: /join other"),
        ("/say lobby", "usage: /say ROOM TEXT"),
        ("/say lobby    ", "usage: /say ROOM TEXT"),
        ("/say bad!room hi", "got 'bad!room'"),
        ("/history", "usage: /history ROOM [N]"),
        ("/history a b c", "usage: /history ROOM [N]"),
        ("/history bad/room", "room names are ASCII letters"),
        ("/history lobby 0", f"/history N must be a whole number from 1 to {MAX_HISTORY}, got '0'"),
        ("/history lobby 51", "got '51'"),
        ("/history lobby -1", "got '-1'"),
        ("/history lobby ٤", "got '٤'"),
        ("/query", "/query takes SECONDS from 0 to 30, got ''"),
        ("/query 31", "got '31'"),
        ("/query nan", "got 'nan'"),
        ("/say lobby " + "x" * (MAX_SAID + 1), f"/say TEXT is {MAX_SAID + 1:,} characters; the limit is"),
        (
            "/say lobby nul\x00byte",
            "/say TEXT cannot hold a NUL character (\\x00): PostgreSQL cannot keep it",
        ),
    ],
)
def test_bad_room_and_database_commands_get_an_error(command, error):
    c = core()
    receive(c, "/join lobby")
    c.joined("lobby")
    [reply] = receive(c, command)
    assert reply.event["text"].startswith("error: ")
    assert error in reply.event["text"]


def test_a_99_character_room_name_is_fine():
    assert receive(core(), "/join " + "x" * 99) == [actions.Join("x" * 99)]


def test_history_asks_for_the_last_n_of_a_room_and_shows_them_oldest_first():
    c = core()
    assert receive(c, "/history lobby") == [actions.History("lobby", 10)]
    assert receive(c, "/history lobby 3") == [actions.History("lobby", 3)]
    [reply] = c.history("lobby", [("ac#2", "second"), ("sc#1", "first")])
    assert (
        reply.event["text"] == "2 messages in lobby, oldest first:\n[lobby] sc#1: first\n[lobby] ac#2: second"
    )
    [reply] = c.history("empty", [])
    assert reply.event["text"] == "no messages in empty yet"


def test_history_keeps_one_message_to_a_line_so_none_can_pose_as_another():
    [reply] = core().history("lobby", [("sc#1", "hi\n[lobby] ac#2: I am ac#2\r\nreally")])
    assert reply.event["text"] == (
        "1 message in lobby, oldest first:\n[lobby] sc#1: hi\\n[lobby] ac#2: I am ac#2\\r\\nreally"
    )


def test_query_holds_the_sync_thread_within_its_budget():
    c = core()
    assert receive(c, "/query 0.5") == [
        actions.Query(0.5),
        actions.Send({"type": "websocket.send", "text": "queried 0.5 s"}),
    ]
    [note, reply] = receive(c, "/query 0.5")  # one long command at a time, then as long a rest
    assert isinstance(note, actions.Note) and "held the sync thread a moment ago" in note.text
    assert reply.event["text"].startswith("error: /query 0.5 refused")


def test_a_database_failure_is_noted_in_full_and_told_briefly():
    c = core()
    error = RuntimeError("could not connect to server at 127.0.0.1:5432")
    note, reply = c.database_failed(actions.History("lobby", 10), error)
    assert note == actions.Note("history failed: RuntimeError: could not connect to server at 127.0.0.1:5432")
    assert reply.event["text"] == "error: history failed (RuntimeError); the database may be down"
    c.disconnect({"type": "websocket.disconnect", "code": 1000})
    assert c.database_failed(actions.Store("lobby", "sc#1", "hi"), error) == []  # nobody to tell


def limited(unsent):
    from consumers.limits import ConnectionLimits

    return ExplorerCore({"type": "websocket", "query_string": b""}, limits=ConnectionLimits(unsent=unsent))


@pytest.mark.parametrize(
    ("message", "via"),
    [
        ({"type": "websocket.receive", "text": "hello"}, "receive"),
        ({"type": "websocket.receive", "bytes": b"hello"}, "receive"),
        ({"type": "websocket.receive", "text": "/bytes hello"}, "receive"),
        ({"type": "room.message", "room": "lobby", "sender": "sc#2", "text": "hi"}, "room_message"),
    ],
)
def test_what_a_client_that_does_not_read_is_sent_has_a_budget(message, via):
    """Echoes, /bytes and room messages wait in the server for a client that does not read them: past
    MAX_UNSENT the client gets an error instead, as a /burst does, and nothing while it is paused."""
    from consumers.limits import MAX_UNSENT, PAUSED

    assert getattr(limited(lambda: 0), via)(message)[0].event.get("type") == "websocket.send"
    over = list(getattr(limited(lambda: MAX_UNSENT + 1), via)(message))
    assert [type(action) for action in over] == [actions.Note, actions.Send]
    assert (
        over[1].event["text"].startswith("error: ")
        and "MiB are waiting for this client" in over[1].event["text"]
    )
    assert "not sent" in over[0].text
    assert [type(action) for action in getattr(limited(lambda: PAUSED), via)(message)] == [actions.Note]
    # A server that does not show what it holds: the reply goes, however much was sent before.
    unknown = limited(lambda: None)
    for _ in range(20):
        assert (
            getattr(unknown, via)({**message, "text": "x" * 1_000_000} if "text" in message else message)[
                0
            ].event.get("type")
            == "websocket.send"
        )


@pytest.mark.parametrize(
    ("message", "via"),
    [
        ({"type": "websocket.receive", "text": "hello"}, "receive"),
        ({"type": "websocket.receive", "text": "/nonsense"}, "receive"),
        ({"type": "websocket.receive", "text": "/help"}, "receive"),
        ({"type": "websocket.receive", "text": "/sleep x"}, "receive"),
        ({"type": "room.message", "room": "lobby", "sender": "sc#2", "text": "hi"}, "room_message"),
    ],
)
def test_a_client_told_it_left_too_much_unread_is_sent_nothing_more_until_it_reads(message, via):
    """Every message the client is sent (an echo, a command's reply or error, a room's message) is held to
    what it has left unread: past the budget, an error says so once, and after it nothing is sent (the
    trace notes each), or the server would hold ever more for it in errors; once it has read, it is
    answered again."""
    from consumers.limits import MAX_UNSENT

    unsent = [MAX_UNSENT + 1]
    c = limited(lambda: unsent[0])
    told = list(getattr(c, via)(message))
    assert [type(action) for action in told] == [actions.Note, actions.Send]
    assert told[1].event["text"].startswith("error: ") and "held back until it reads" in told[1].event["text"]
    for _ in range(3):
        held_back = list(getattr(c, via)(message))
        assert [type(action) for action in held_back] == [actions.Note]
        assert "not sent" in held_back[0].text
    unsent[0] = 0  # it has read
    assert any(isinstance(action, actions.Send) for action in getattr(c, via)(message))


def test_a_bursts_own_error_is_what_a_client_that_left_too_much_unread_is_told():
    """A /burst stopped by the client's unread bytes says after how many messages, once."""
    from consumers.limits import MAX_UNSENT

    unsent = [0]
    c = limited(lambda: unsent[0])
    said = []
    for action in c.receive({"type": "websocket.receive", "text": "/burst 100 8"}):
        if isinstance(action, actions.Send):
            said.append(action.event["text"])
            if len(said) == 3:
                unsent[0] = MAX_UNSENT + 1  # it stopped reading after three
    assert len(said) == 4 and said[-1].startswith("error: /burst stopped after 3 of 100 messages: ")
    assert said[-1].endswith("; what it is sent is held back until it reads")
    assert [type(a) for a in c.receive({"type": "websocket.receive", "text": "/nope"})] == [actions.Note]


def test_what_a_client_that_left_too_much_unread_asks_for_is_still_done():
    """Only what it would be sent is held back: a room it joins or leaves, and its close, still happen."""
    from consumers.limits import MAX_UNSENT

    c = limited(lambda: MAX_UNSENT + 1)
    assert [type(a) for a in c.receive({"type": "websocket.receive", "text": "/join lobby"})] == [
        actions.Join
    ]
    c.joined("lobby")
    assert [type(a) for a in c.receive({"type": "websocket.receive", "text": "/leave lobby"})] == [
        actions.Leave
    ]
    [close] = c.receive({"type": "websocket.receive", "text": "/close 4000"})
    assert close.event == {"type": "websocket.close", "code": 4000}


@pytest.mark.parametrize(
    "text", ["/" + "a" * 100_000, "/sleep " + "9" * 100_000, "/close 4000 " + "r" * 100_000]
)
def test_an_error_reply_quotes_a_long_input_shortened(text):
    reply = text_of(core().receive({"type": "websocket.receive", "text": text}))
    assert reply.startswith("error: ") and len(reply) <= 400
