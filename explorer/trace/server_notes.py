"""Where daphne 4.2 does not put on the wire what an event asks for.

Each note comes from reading ``daphne/ws_protocol.py`` (``handle_reply``,
``serverClose``, ``onClose``), ``daphne/server.py`` (``handle_reply``,
``application_checker``) and the autobahn calls they make, and each is backed
by a wire test in ``tests/test_server_notes.py`` that shows what a real client
got. The functions look at the connection's state *before* the event.
"""

from collections.abc import Mapping

from explorer.trace.rules import event_type_of

SERVER = "daphne 4.2"
# daphne's (and runserver's) default websocket_handshake_timeout: autobahn
# drops a handshake that is still open after this many seconds.
HANDSHAKE_TIMEOUT = 5


def is_autobahn_close_code(code):
    return code == 1000 or 3000 <= code <= 4999


def outgoing(event, rules, seconds):
    """Notes for an event the application sends, ``seconds`` after the connection opened."""
    if not isinstance(event, Mapping):
        return []
    event_type = event_type_of(event)
    if rules.disconnected:
        return [f"{SERVER} drops events sent after the connection ended, without an error"]
    if rules.close_sent:
        return [
            f"{SERVER} raises autobahn's Disconnected in the consumer's send until the client "
            "answers the close, and drops the event silently after that"
        ]
    if event_type is None and "type" not in event:
        outcome = "the client gets 1011" if rules.accepted else "the client gets HTTP 500"
        return [f"{SERVER} raises KeyError('type') in send: {outcome}"]
    if event_type == "websocket.accept":
        return accept_notes(event, rules, seconds)
    if event_type == "websocket.send":
        return send_notes(event, rules)
    if event_type == "websocket.close":
        return close_notes(event, rules)
    return [f"{SERVER} ignores event types it does not know: nothing reaches the client"]


def accept_notes(event, rules, seconds):
    notes = []
    if rules.accepted:
        return [f"{SERVER} fails a second accept (AttributeError in send): the client gets 1011"]
    subprotocol = event.get("subprotocol")
    if isinstance(subprotocol, str) and subprotocol not in rules.offered:
        notes.append(
            f"autobahn refuses a subprotocol the client did not offer: the handshake never completes "
            f"and {SERVER} drops it after its {HANDSHAKE_TIMEOUT} s handshake timeout"
        )
    if event.get("headers"):
        notes.append(
            f"{SERVER} ignores accept headers: they are not in the handshake response "
            "(its scope declares no spec_version, so 2.0; accept headers came in 2.1)"
        )
    if seconds > HANDSHAKE_TIMEOUT:
        notes.append(
            f"accepted after {seconds:.1f} s: {SERVER} drops a handshake still open after "
            f"{HANDSHAKE_TIMEOUT} s (websocket_handshake_timeout), so the client has likely gone"
        )
    return notes


def send_notes(event, rules):
    if not rules.accepted:
        return [
            f"{SERVER} raises ValueError ('Socket has not been accepted') in send: "
            "the consumer fails and the client gets HTTP 500"
        ]
    data, text = event.get("bytes"), event.get("text")
    if data and text:
        return [f"{SERVER} raises ValueError in send for bytes and text together: the client gets 1011"]
    if not data and not text:
        return [f"{SERVER} sends nothing for an empty message (it tests bytes and text for truth)"]
    if data is not None and text is not None:
        return [f"{SERVER} sends only the non-empty one of bytes and text"]
    return []


def close_notes(event, rules):
    if not rules.accepted:
        return [f"{SERVER} refuses the handshake with HTTP 403; no close code or reason reaches the client"]
    notes = []
    code = event.get("code")
    if code is not None and not (type(code) is int and is_autobahn_close_code(code)):
        notes.append(
            f"autobahn sends only 1000 or 3000-4999, so {code!r} makes the consumer's send raise: "
            "the client gets 1011"
        )
    # autobahn's onCloseFrame: a server that closed first aborts the TCP connection.
    notes.append("autobahn resets the TCP connection once the client answers, so browsers say wasClean false")
    if event.get("reason"):
        notes.append(
            f"{SERVER} sends the code only; the reason is dropped "
            "(its scope declares no spec_version, so 2.0; close reasons came in 2.3)"
        )
    return notes


def incoming(event, rules):
    """Notes for an event the server sent."""
    if not isinstance(event, Mapping) or event.get("type") != "websocket.disconnect":
        return []
    notes = []
    if "reason" not in event:
        notes.append(f"{SERVER} does not pass on the reason the client closed with")
    code = event.get("code")
    if code == 1009:
        notes.append(
            f"{SERVER} refused a message over its websocket_max_message_size (1 MiB unless set) "
            "and closed with 1009; the consumer never saw the message"
        )
    elif rules.accepted and not rules.close_sent and code not in (1000, 1005, 1006):
        # autobahn's echoCloseCodeReason is off: the closing handshake is not an echo.
        notes.append(f"autobahn answered the client's close {code!r} with 1000 and no reason, not an echo")
    return notes


def exception_outcome(accepted, closing):
    """What daphne does when a consumer raises, given what the server really sent and got."""
    if closing:
        return "the connection was already closing or gone, so no 1011 reaches the client"
    if accepted:
        return (
            "the server closes the connection with 1011 when its application checker "
            "next runs (about once a second)"
        )
    return "the handshake was not accepted: the server answers HTTP 500"
