"""The rule checker on its own: valid sequences break nothing, each broken rule is named once."""

import pytest

from explorer.close_frame import is_close_code
from explorer.trace.rules import RULES, WebSocketRules

SCOPE = {
    "type": "websocket",
    "asgi": {"version": "3.0"},
    "path": "/ws/ac/",
    "raw_path": b"/ws/ac/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1")],
    "client": ["127.0.0.1", 5000],
    "server": ["127.0.0.1", 8000],
    "subprotocols": ["chat"],
}
CONNECT = {"type": "websocket.connect"}


def opened(scope=SCOPE):
    rules = WebSocketRules(scope)
    assert rules.incoming(CONNECT) == []
    return rules


def test_a_daphne_scope_breaks_nothing():
    assert WebSocketRules(SCOPE).scope_violations == []


def test_a_whole_valid_session_breaks_nothing():
    rules = opened()
    accept = {"type": "websocket.accept", "subprotocol": "chat", "headers": [[b"x-a", b"1"]]}
    assert rules.outgoing(accept) == []
    assert rules.incoming({"type": "websocket.receive", "text": "hi", "bytes": None}) == []
    assert rules.outgoing({"type": "websocket.send", "bytes": b"hi"}) == []
    assert rules.outgoing({"type": "websocket.send", "text": ""}) == []
    assert rules.outgoing({"type": "websocket.close", "code": 4000, "reason": "é" * 61 + "x"}) == []
    assert rules.incoming({"type": "websocket.disconnect", "code": 4000}) == []
    assert rules.count == 0


def test_close_before_accept_is_a_rejection():
    rules = opened()
    assert rules.outgoing({"type": "websocket.close"}) == []
    assert rules.close_sent and not rules.accepted


@pytest.mark.parametrize(
    ("code", "allowed"),
    [
        (1000, True),
        (1001, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1014, True),
        (1015, False),
        (1016, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
        (999, False),
    ],
)
def test_close_codes_an_endpoint_may_send(code, allowed):
    assert is_close_code(code) is allowed


@pytest.mark.parametrize(
    "event",
    [None, "websocket.send", 42, {"no": "type"}, {"type": 7}, {"type": "http.response.start"}],
)
def test_odd_outgoing_values_are_an_event_type_violation_not_a_crash(event):
    assert [v.rule for v in opened().outgoing(event)] == ["event.type"]


def test_a_denial_response_needs_the_extension():
    assert [v.rule for v in opened().outgoing({"type": "websocket.http.response.start", "status": 403})] == [
        "event.type"
    ]
    rules = opened({**SCOPE, "extensions": {"websocket.http.response": {}}})
    assert rules.outgoing({"type": "websocket.http.response.start", "status": 403}) == []


def test_after_disconnect_wins_over_after_close():
    rules = opened()
    rules.outgoing({"type": "websocket.accept"})
    rules.outgoing({"type": "websocket.close"})
    rules.incoming({"type": "websocket.disconnect", "code": 1000})
    late = rules.outgoing({"type": "websocket.send", "text": "x"})
    assert [v.rule for v in late] == ["state.after-disconnect"]


def test_a_scope_of_another_type_is_reported():
    rules = WebSocketRules({"type": "http", "path": "/", "headers": []})
    assert [v.rule for v in rules.scope_violations] == ["scope.type"]


def test_odd_scopes_never_raise():
    odd = [None, [], "websocket", {"type": "websocket", "path": 5, "headers": "nope"}, {"headers": [1]}]
    for scope in odd:
        assert WebSocketRules(scope).scope_violations


def test_every_rule_has_a_summary_and_a_hint():
    for rule, (summary, hint) in RULES.items():
        subject = rule.split(".")[0]
        assert subject in {"scope", "event", "receive", "disconnect", "accept", "send", "close", "state"}
        assert summary and hint


def test_the_uppercase_header_hint_says_lowercase():
    from explorer.trace.rules import WebSocketRules

    rules = WebSocketRules({"type": "websocket", "path": "/", "headers": []})
    rules.incoming({"type": "websocket.connect"})
    [violation] = rules.outgoing({"type": "websocket.accept", "headers": [(b"X-A", b"1")]})
    assert "lowercase" in violation.hint
