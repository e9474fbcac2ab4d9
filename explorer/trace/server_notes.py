"""What the running server does with an event, where that is not what the event asked for.

Two steps, so each rule lives once. ``situations`` says what an event is,
given the connection's state before it (a close before accepting, an empty
message, a reason on a close...), the same for every server. Each server
then has its notes for the situations where it does something of its own;
a situation it has no note for is one it handles as asked. Every note was
found by reading the server's WebSocket code and is backed by a wire test
on that server (``tests/test_server_notes.py``); ``docs/servers.md`` has
the matrix. Under a server the explorer does not know, the notes say only
what its declared ``spec_version`` implies, never what the wire did.
"""

import threading
from collections.abc import Callable

from explorer.close_frame import (
    APPLICATION_CLOSE_CODES,
    MAX_CLOSE_REASON_BYTES,
    is_application_close_code,
    is_close_code,
    reason_size,
)
from explorer.trace.rules import DENIAL_TYPES, event_type_of, is_mapping

# Set by a server's own stop that closes every WebSocket with 1001 (the explorer's daphne_fixes):
# a disconnect with 1001 after it is that close answered, not one the client started.
closing_all = threading.Event()

DAPHNE_HANDSHAKE_TIMEOUT = 5  # seconds: daphne's (and runserver's) websocket_handshake_timeout
UVICORN_LEGACY_HANDSHAKE_TIMEOUT = 10  # seconds: websockets' open_timeout, under uvicorn --ws websockets


def situations(event, rules):
    """What an event the application sends is, in the terms the notes use."""
    if not is_mapping(event):
        return []
    event_type = event_type_of(event)
    if rules.disconnected:
        return ["after-disconnect"]
    if rules.close_sent:
        return ["after-close"]
    if "type" not in event:
        return ["no-type"]
    if event_type in DENIAL_TYPES:
        return ["denial-after-accept" if rules.accepted else "denial"]
    if event_type == "websocket.accept":
        if rules.accepted:
            return ["accept-twice"]
        found = []
        subprotocol = event.get("subprotocol")
        if isinstance(subprotocol, str) and subprotocol not in rules.offered:
            found.append("accept-subprotocol")
        if event.get("headers"):
            found.append("accept-headers")
        found.append("accept")
        return found
    if event_type == "websocket.send":
        if not rules.accepted:
            return ["send-before-accept"]
        data, text = event.get("bytes"), event.get("text")
        if data is not None and text is not None:
            return ["send-both"]
        if data is None and text is None:
            return ["send-neither"]
        payload = data if data is not None else text
        if not isinstance(payload, (bytes, str)) or (text is not None and not isinstance(text, str)):
            return ["send-wrong-type"]
        return [] if payload else ["send-empty"]
    if event_type == "websocket.close":
        if not rules.accepted:
            return ["close-before-accept"]
        found = []
        code = event.get("code", 1000)
        if not (type(code) is int and is_close_code(code)):
            found.append("close-code")
        reason = event.get("reason")
        if isinstance(reason, str) and reason:
            too_long = reason_size(reason) > MAX_CLOSE_REASON_BYTES
            found.append("close-reason-long" if too_long else "close-reason")
        return [*found, "close"]
    return ["unknown-type"]


# What the spec itself says happens, for a situation a server's notes do not cover.
SPEC = {
    "close-before-accept": "a close before accepting rejects the handshake: the spec has the server answer "
    "HTTP 403",
}


def endings(accepted, refused=None, raised=(True, False)):
    """``Notes.ENDINGS`` where the ending turns only on whether the handshake was accepted, if at all."""
    refused = refused or accepted
    return {(each, took): accepted if took else refused for each in raised for took in (True, False)}


class Notes:
    """A server's notes, by situation. The base knows no server: only what the spec version implies."""

    OUTGOING: dict[str, str | Callable[..., str | None]] = {}  # a note, or a method that makes one
    # The message under which the server logs an application's whole traceback, when it is known to.
    LOGS_TRACEBACK: str | None = None

    def __init__(self, server):
        self.server = server
        self.name = server.label

    def outgoing(self, event, rules, seconds):
        """Notes for an event the application sends, ``seconds`` after the connection arrived."""
        return self.said(situations(event, rules), event, rules, seconds)

    def said(self, found, event, rules, seconds):
        """The notes for the situations ``found``."""
        notes = []
        for situation in found:
            note = self.OUTGOING.get(situation, SPEC.get(situation))
            if callable(note):
                note = note(self, event, rules, seconds)
            if note:
                notes.append(note.format(server=self.name, spec=self.server.spec))
        return notes

    def incoming(self, event, rules):
        """Notes for an event the server sent: the servers have some for a websocket.disconnect only."""
        if is_mapping(event) and event.get("type") == "websocket.disconnect":
            return self.disconnected(event.get("code"), rules)
        return []

    def disconnected(self, code, rules):
        """Notes for a websocket.disconnect with ``code``."""
        return []

    # (raised, accepted): what the client sees when the application ends that way.
    ENDINGS = endings(
        "what the client sees depends on the server, which the explorer does not know", raised=(True,)
    )

    def logs_traceback(self):
        """A note saying the server prints the traceback itself, so the trace need not; or None."""
        if self.LOGS_TRACEBACK is None:
            return None
        return f"{self.name} logs the whole traceback ({self.LOGS_TRACEBACK!r})"

    def ending(self, raised, accepted, closing, attempted=False):
        """What the client sees as the application ends, given what the server really took.

        ``accepted``: the server took an accept; ``attempted``: one was sent
        (it may have raised); ``closing``: a close or a denial was taken, or
        the client has gone.
        """
        if closing:
            return "the connection was already closing or gone" if raised else None
        return self.ENDINGS.get((raised, accepted))


def not_offered_by_client(self, event, rules, seconds):
    return (
        f"{{server}} puts Sec-WebSocket-Protocol: {event.get('subprotocol')!r} in the handshake anyway; "
        "a client that did not offer it fails the connection (RFC 6455), browsers included"
    )


class UnknownNotes(Notes):
    """A server the explorer does not know: what the spec version its scope declares implies (nothing,
    when what it declares is not a version)."""

    def __init__(self, server):
        super().__init__(server)
        try:
            self.version = tuple(int(part) for part in server.spec_version.split(".")[:2])
        except ValueError:
            self.version = None

    def outgoing(self, event, rules, seconds):
        found = situations(event, rules)
        notes = self.said(found, event, rules, seconds)
        spec = self.version
        if spec is None:
            return notes
        if "accept-headers" in found and spec < (2, 1):
            notes.append(f"{self.server.spec}; accept headers came in 2.1, so it may not send them")
        if "close-reason" in found and spec < (2, 3):
            notes.append(f"{self.server.spec}; close reasons came in 2.3, so it may not send them")
        if spec >= (2, 4) and {"after-close", "after-disconnect"} & set(found):
            notes.append(f"{self.server.spec}: a send on a closed connection should raise an OSError")
        return notes


class HarnessNotes(Notes):
    """channels.testing: events go to the test's queue; there is no wire to say anything of."""

    ENDINGS = endings("the test's next receive_output() raises it", raised=(True,))


DROPS_REASON = "{server} sends the code only; the reason is dropped ({spec}; close reasons came in 2.3)"
DROPS_CLOSE = "{server} refuses the handshake with HTTP 403; the code and reason are dropped"
ON_THE_WIRE = "{server} puts {code} on the wire as it is; clients fail on a code they may not receive"


class DaphneNotes(Notes):
    """daphne 4.2: ``ws_protocol.py`` (``handle_reply``, ``serverClose``), ``server.py``, autobahn."""

    def accept(self, event, rules, seconds):
        if seconds > DAPHNE_HANDSHAKE_TIMEOUT:
            return (
                f"accepted after {seconds:.1f} s: {{server}} drops a handshake still open after "
                f"{DAPHNE_HANDSHAKE_TIMEOUT} s (websocket_handshake_timeout), so the client has likely gone"
            )
        return None

    def send_both(self, event, rules, seconds):
        if event.get("bytes") and event.get("text"):
            return "{server} raises ValueError in send for bytes and text together: the client gets 1011"
        return "{server} sends only the non-empty one of bytes and text"

    def no_type(self, event, rules, seconds):
        outcome = "the client gets 1011" if rules.accepted else "the client gets HTTP 500"
        return f"{{server}} raises KeyError('type') in send: {outcome}"

    def close(self, event, rules, seconds):
        code = event.get("code", 1000)
        if not (type(code) is int and is_application_close_code(code)):
            return (
                f"autobahn sends only {APPLICATION_CLOSE_CODES}, so {code!r} makes the consumer's send "
                "raise: the client gets 1011"
            )
        # autobahn's onCloseFrame: a server that closed first aborts the TCP connection.
        return "autobahn resets the TCP connection once the client answers, so browsers say wasClean false"

    LOGS_TRACEBACK = "Exception inside application"
    OUTGOING = {
        "after-disconnect": "{server} drops events sent after the connection ended, without an error",
        "after-close": "{server} raises autobahn's Disconnected in the consumer's send until the client "
        "answers the close, and drops the event silently after that",
        "no-type": no_type,
        "denial": "{server} ignores websocket.http.response events (its scope offers no such extension): "
        f"the handshake stays open until its {DAPHNE_HANDSHAKE_TIMEOUT} s handshake timeout drops it",
        "accept-twice": "{server} fails a second accept (AttributeError in send): the client gets 1011",
        "accept-subprotocol": "autobahn refuses a subprotocol the client did not offer: the handshake never "
        f"completes and {{server}} drops it after its {DAPHNE_HANDSHAKE_TIMEOUT} s handshake timeout",
        "accept-headers": "{server} ignores accept headers: they are not in the handshake response "
        "({spec}; accept headers came in 2.1)",
        "accept": accept,
        "send-before-accept": "{server} raises ValueError ('Socket has not been accepted') in send: "
        "the consumer fails and the client gets HTTP 500",
        "send-both": send_both,
        "send-empty": "{server} sends nothing for an empty message (it tests bytes and text for truth)",
        "send-neither": "{server} sends nothing for it and raises nothing",
        "close-before-accept": "{server} refuses the handshake with HTTP 403; no close code or reason "
        "reaches the client",
        "close-reason": DROPS_REASON,
        "close-reason-long": DROPS_REASON,
        "close": close,
        "unknown-type": "{server} ignores event types it does not know: nothing reaches the client",
    }

    def disconnected(self, code, rules):
        if code == 1009:
            return [
                f"{self.name} refused a message over its websocket_max_message_size (1 MiB unless set) "
                "and closed with 1009; the consumer never saw the message"
            ]
        if code == 1001 and closing_all.is_set():
            return [f"{self.name} is stopping: it closed this connection with 1001, and the client answered"]
        if rules.accepted and not rules.close_sent and code not in (1000, 1005, 1006):
            # autobahn's echoCloseCodeReason is off: the closing handshake is not an echo.
            return [f"autobahn answered the client's close {code!r} with 1000 and no reason, not an echo"]
        return []

    ENDINGS = {
        (True, True): "daphne closes the connection with 1011 when its application checker next runs "
        "(about once a second)",
        (True, False): "the handshake was not accepted: daphne answers HTTP 500",
        (False, True): "daphne leaves the connection open: the client is not told the application has gone",
        (False, False): "the handshake was never answered: daphne drops it at its "
        f"{DAPHNE_HANDSHAKE_TIMEOUT} s handshake timeout",
    }


class UvicornNotes(Notes):
    """uvicorn 0.54: ``protocols/websockets/{websockets_sansio,wsproto,websockets}_impl.py``."""

    def accept(self, event, rules, seconds):
        if self.server.implementation == "websockets" and seconds > UVICORN_LEGACY_HANDSHAKE_TIMEOUT:
            return (
                f"accepted after {seconds:.1f} s: {{server}} drops a handshake still open after "
                f"{UVICORN_LEGACY_HANDSHAKE_TIMEOUT} s (websockets' open_timeout), so the client has gone"
            )
        return None

    def accept_subprotocol(self, event, rules, seconds):
        if self.server.implementation == "wsproto":
            return (
                "wsproto raises LocalProtocolError in send for a subprotocol the client did not offer, and "
                "{server} sends no HTTP response at all"
            )
        return not_offered_by_client(self, event, rules, seconds)

    def send_neither(self, event, rules, seconds):
        if self.server.implementation == "websockets-sansio":
            return "{server} sends nothing for it and raises nothing"
        return "{server} raises TypeError in send"

    def close_code(self, event, rules, seconds):
        code = event.get("code")
        if self.server.implementation == "wsproto":
            if code in (1005, 1006):
                return f"wsproto puts 1000 on the wire instead of {code!r}"
            return ON_THE_WIRE.replace("{code}", repr(code))
        return "websockets raises ProtocolError('invalid status code') in send: nothing reaches the client"

    def close_reason_long(self, event, rules, seconds):
        if self.server.implementation == "wsproto":
            return "wsproto cuts the reason to 123 bytes"
        return "websockets raises ProtocolError('control frame too long') in send: nothing reaches the client"

    def denial(self, event, rules, seconds):
        if (
            self.server.implementation == "websockets"
            and event.get("type") == "websocket.http.response.start"
        ):
            return (
                "{server} answers with this status and headers as soon as the event loop runs again: "
                "a body sent after that is lost (a SyncConsumer's next send is always after it)"
            )
        return None

    def send_wrong_type(self, event, rules, seconds):
        if self.server.implementation == "websockets-sansio":
            return "{server} raises in send (AttributeError or TypeError) for a payload of the wrong type"
        return "{server} sends it anyway, as a frame of the payload's own type"

    def close(self, event, rules, seconds):
        refused = {"close-code", "close-reason-long"} & set(situations(event, rules))
        if refused and self.server.implementation != "wsproto":
            return None  # websockets raised: there is no close
        if self.server.implementation == "websockets":
            return "{server}'s send waits for the client to answer the close (up to 10 s)"
        return (
            "{server} hands the consumer's next receive a websocket.disconnect of its own making, "
            "with this event's code and reason"
        )

    LOGS_TRACEBACK = "Exception in ASGI application"
    OUTGOING = {
        "after-close": "{server} raises RuntimeError in send (Unexpected ASGI message after websocket.close)",
        "after-disconnect": "{server} raises in send: ClientDisconnected (an OSError) once the TCP "
        "connection is gone, else RuntimeError",
        "no-type": "{server} raises KeyError('type') in send",
        "accept-twice": "{server} raises RuntimeError in send (Expected ASGI message 'websocket.send' or "
        "'websocket.close')",
        "accept-subprotocol": accept_subprotocol,
        "accept": accept,
        "send-before-accept": "{server} raises RuntimeError in send (Expected ASGI message "
        "'websocket.accept' or 'websocket.close')",
        "send-both": "{server} sends the bytes only, as a binary frame",
        "send-neither": send_neither,
        "send-wrong-type": send_wrong_type,
        "denial": denial,
        "close-before-accept": DROPS_CLOSE,
        "close-code": close_code,
        "close-reason-long": close_reason_long,
        "close": close,
        "unknown-type": "{server} raises RuntimeError in send (Expected ASGI message 'websocket.send' or "
        "'websocket.close')",
    }

    def disconnected(self, code, rules):
        if code == 1009 and self.server.implementation != "websockets":
            return [
                f"{self.name} refused a message over its ws_max_size (16 MiB unless set) and closed "
                "with 1009; the consumer never saw the message"
            ]
        return []

    ENDINGS = endings(
        accepted="uvicorn closes the TCP connection without a close frame: the client sees 1006",
        refused="the handshake was not accepted: uvicorn answers HTTP 500",
    )

    def ending(self, raised, accepted, closing, attempted=False):
        if attempted and not accepted and not closing and self.server.implementation == "wsproto":
            return "wsproto had begun the handshake, so uvicorn sends no HTTP response at all"
        return super().ending(raised, accepted, closing, attempted)


class HypercornNotes(Notes):
    """hypercorn 0.18: ``protocol/ws_stream.py`` and wsproto under it."""

    def close_code(self, event, rules, seconds):
        code = event.get("code")
        if code in (1005, 1006, 1015):
            return f"wsproto puts 1000 on the wire instead of {code!r}"
        return ON_THE_WIRE.replace("{code}", repr(code))

    LOGS_TRACEBACK = "Error in ASGI Framework"
    OUTGOING = {
        "after-close": "{server} raises UnexpectedMessageError in send until it has read the client's answer "
        "to the close, and drops the event silently after that",
        "after-disconnect": "{server} drops events sent after the connection ended, without an error",
        "no-type": "{server} raises KeyError('type') in send",
        "accept-twice": "{server} raises UnexpectedMessageError in send",
        "accept-subprotocol": "{server} raises Exception('Invalid Subprotocol') in send: nothing reaches the "
        "client, which is left without an HTTP response",
        "send-before-accept": "{server} raises UnexpectedMessageError in send",
        "send-both": "{server} sends the bytes only, as a binary frame",
        "send-neither": "{server} raises in send (KeyError for a missing text, TypeError for None)",
        "send-wrong-type": "{server} raises TypeError in send for a payload of the wrong type",
        "close-reason-long": "wsproto cuts the reason to 123 bytes",
        "close-before-accept": DROPS_CLOSE,
        "close-code": close_code,
        "close": "{server} will tell the consumer the client answered with 1000, whatever it answered",
        "unknown-type": "{server} raises UnexpectedMessageError in send",
    }

    def disconnected(self, code, rules):
        if code == 1006 and not rules.close_sent:
            return [
                f"{self.name} says 1006 whatever happened: a client's close with any code, a dropped "
                "connection or a message over its limit (hypercorn #127)"
            ]
        return []

    ENDINGS = endings(
        accepted="hypercorn closes the connection with 1011 at once",
        refused="the handshake was not accepted: hypercorn answers HTTP 500",
    )


class GranianNotes(Notes):
    """granian 2.8: its Rust ASGI WebSocket protocol, seen from the wire."""

    LOGS_TRACEBACK = "Application callable raised an exception"
    OUTGOING = {
        "after-close": "{server} drops events sent after a close, without an error",
        "after-disconnect": "{server} drops events sent after the connection ended, without an error",
        "no-type": "{server} raises RuntimeError('Unsupported ASGI message') in send",
        "accept-twice": "{server} raises RuntimeError('ASGI flow error: Connection already upgraded')",
        "accept-subprotocol": not_offered_by_client,
        "accept-headers": "{server} ignores accept headers: they are not in the handshake response",
        "send-before-accept": "{server} drops it without an error: nothing reaches the client. The handshake "
        "has no timeout, and if the client gives up the application is not told (no websocket.disconnect)",
        "denial": "after this response {server} sends the application no websocket.disconnect: a consumer "
        "that waits for one waits for ever",
        "send-both": "{server} raises RuntimeError('Unsupported ASGI message') in send",
        "send-neither": "{server} raises RuntimeError('Unsupported ASGI message') in send",
        "send-wrong-type": "{server} sends an empty frame for a payload of the wrong type",
        "close-before-accept": DROPS_CLOSE,
        "close-code": ON_THE_WIRE.replace("{code}", "the code"),
        "close-reason-long": "{server} sends a close frame longer than the 125 bytes a control frame may "
        "have: clients fail the connection",
        "close": "{server} ends the TCP connection at once, without waiting for the client's answer",
        "unknown-type": "{server} raises RuntimeError('Unsupported ASGI message') in send",
    }

    ENDINGS = endings(
        accepted="granian sends a close frame with no code at once: the client sees 1005",
        refused="the handshake was not accepted: granian answers HTTP 403",
    )


NOTES = {
    "daphne": DaphneNotes,
    "uvicorn": UvicornNotes,
    "hypercorn": HypercornNotes,
    "granian": GranianNotes,
    "test": HarnessNotes,
}


def notes_for(server):
    return NOTES.get(server.name, UnknownNotes)(server)
