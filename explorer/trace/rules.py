"""The ASGI WebSocket spec's rules, checked at each event of one connection.

``WebSocketRules`` is sans-I/O: the trace hands it the scope once and each
event as it crosses, in either direction, and gets back the rules that event
broke. It checks fields and their types per event type, the scope, and the
order the spec allows (connect, then accept once, then send, then close).
Nothing here raises on what it is given, however odd.

Spec: https://asgi.readthedocs.io/en/latest/specs/www.html#websocket
"""

from collections.abc import Iterable, Mapping
from typing import Any

from explorer.close_frame import MAX_CLOSE_REASON_BYTES, is_close_code, reason_size
from explorer.redaction import is_byte_pair
from explorer.trace.entry import Violation

# rule id: (what the rule says, a hint for fixing it)
RULES = {
    "scope.type": ("a WebSocket scope has type 'websocket'", "route only websocket scopes to a consumer"),
    "scope.required": (
        "a WebSocket scope has path and headers",
        "the server must fill in every required key",
    ),
    "scope.field-type": (
        "each scope key has the type the spec gives it",
        "path and root_path are str; raw_path and query_string bytes; headers [bytes, bytes] pairs; "
        "subprotocols str; client and server [host, port] with an int port",
    ),
    "event.type": (
        "an event has a str type that is one of the WebSocket events for its direction",
        "servers send websocket.connect, receive and disconnect; applications send websocket.accept, "
        "send and close",
    ),
    "receive.payload": (
        "websocket.receive carries exactly one of bytes (bytes) and text (str)",
        "the other key is absent or None",
    ),
    "disconnect.code": ("websocket.disconnect carries an int code", "1005 when the client gave none"),
    "accept.subprotocol": (
        "websocket.accept's subprotocol is None or one the client offered",
        "pick from scope['subprotocols']; RFC 6455 has the client fail the connection otherwise",
    ),
    "accept.headers": (
        "websocket.accept's headers are [name, value] byte pairs, names lowercase, "
        "without sec-websocket-protocol",
        "encode names and values as bytes, names in lowercase; choose a subprotocol with the subprotocol "
        "key, not a header",
    ),
    "send.payload": (
        "websocket.send carries exactly one of bytes (bytes) and text (str)",
        "set the other key to None or leave it out",
    ),
    "close.code": (
        "websocket.close's code is an int the WebSocket protocol lets an endpoint send",
        "1000-1003, 1007-1014 or 3000-4999; 1004-1006 and 1015 are never sent",
    ),
    "close.reason": (
        f"websocket.close's reason is a str of at most {MAX_CLOSE_REASON_BYTES} UTF-8 bytes",
        "a close frame has room for 125 bytes, two of them the code",
    ),
    "state.connect-first": (
        "websocket.connect comes first and only once",
        "a server sends it once, before anything else",
    ),
    "state.accept-before-connect": (
        "accept only after websocket.connect has been received",
        "send accept from the connect handler",
    ),
    "state.accept-twice": ("accept once", "a connection is accepted or rejected once"),
    "state.send-before-accept": (
        "send only after accepting",
        "send websocket.accept first; a close before accepting rejects the handshake",
    ),
    "state.after-close": (
        "send nothing after websocket.close",
        "the connection is closing: stop once close is sent",
    ),
    "state.after-disconnect": (
        "send nothing after websocket.disconnect",
        "the client has gone: stop the consumer (raise StopConsumer)",
    ),
}

INCOMING_TYPES = {"websocket.connect", "websocket.receive", "websocket.disconnect"}
OUTGOING_TYPES = {"websocket.accept", "websocket.send", "websocket.close"}
DENIAL_TYPES = {"websocket.http.response.start", "websocket.http.response.body"}


def broke(rule: str, problem: str) -> Violation:
    """The violation of ``rule``, with what exactly is wrong and the rule's hint."""
    return Violation(rule, problem, RULES[rule][1])


def is_mapping(value: Any) -> bool:
    """Whether ``value`` is a Mapping: a dict nearly always, asked several times per event, and the ABC's
    own check is slow (a few microseconds on the consumer's path)."""
    return type(value) is dict or isinstance(value, Mapping)


def event_type_of(event: Any) -> str | None:
    """An event's type if it is a str, else None: anything else is what ``event.type`` reports."""
    if not (type(event) is dict or isinstance(event, Mapping)):  # is_mapping inline: asked several times
        return None
    event_type = event.get("type")
    return event_type if type(event_type) is str or isinstance(event_type, str) else None


def type_repr(value, limit=80):
    """A short repr for a problem's text: a consumer's odd value can be anything, of any size."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type_name(value)}>"
    return text if len(text) <= limit else text[:limit] + "…"


def type_name(value):
    return type(value).__name__


def payload_problem(event):
    """What is wrong with a receive or send event's bytes/text, or None."""
    data, text = event.get("bytes"), event.get("text")
    if data is not None and not isinstance(data, bytes):
        return f"bytes is a {type_name(data)}, not bytes"
    if text is not None and not isinstance(text, str):
        return f"text is a {type_name(text)}, not str"
    if data is not None and text is not None:
        return "both bytes and text are set"
    if data is None and text is None:
        return "neither bytes nor text is set"
    return None


def scope_problems(scope):
    if not isinstance(scope, Mapping):
        return [broke("scope.type", f"the scope is a {type_name(scope)}, not a dict")]
    found = []
    if scope.get("type") != "websocket":
        found.append(broke("scope.type", f"type is {type_repr(scope.get('type'))}"))
    found += [broke("scope.required", f"{key} is missing") for key in ("path", "headers") if key not in scope]

    def wrong(key, expected):
        found.append(broke("scope.field-type", f"{key} is a {type_name(scope[key])}, not {expected}"))

    for key, kind, expected in [
        ("path", str, "str"),
        ("root_path", str, "str"),
        ("query_string", bytes, "bytes"),
        ("http_version", str, "str"),
        ("scheme", str, "str"),
        ("asgi", Mapping, "a dict"),
    ]:
        if key in scope and not isinstance(scope[key], kind):
            wrong(key, expected)
    if scope.get("raw_path") is not None and not isinstance(scope["raw_path"], bytes):
        wrong("raw_path", "bytes")
    if "headers" in scope and not (
        isinstance(scope["headers"], Iterable)
        and not isinstance(scope["headers"], (str, bytes, Mapping))
        and all(is_byte_pair(pair) for pair in scope["headers"])
    ):
        found.append(broke("scope.field-type", "headers are not all [bytes, bytes] pairs"))
    subprotocols = scope.get("subprotocols")
    if subprotocols is not None and (
        isinstance(subprotocols, (str, bytes)) or not all(isinstance(name, str) for name in subprotocols)
    ):
        found.append(broke("scope.field-type", "subprotocols are not all str"))
    for key in ("client", "server"):
        address = scope.get(key)
        if address is None:
            continue
        if not (isinstance(address, (list, tuple)) and len(address) == 2 and isinstance(address[0], str)):
            wrong(key, "a [host, port] pair")
        elif not (type(address[1]) is int or (key == "server" and address[1] is None)):
            # server may be [path, None] for a unix socket (spec 2.2)
            found.append(broke("scope.field-type", f"{key}'s port is a {type_name(address[1])}, not an int"))
    return found


class WebSocketRules:
    """One connection's position in the protocol, and the rules each event breaks."""

    def __init__(self, scope: Any) -> None:
        subprotocols = scope.get("subprotocols") if isinstance(scope, Mapping) else None
        self.offered = list(subprotocols) if isinstance(subprotocols, (list, tuple)) else []
        extensions = scope.get("extensions") if isinstance(scope, Mapping) else None
        self.denial_response = isinstance(extensions, Mapping) and "websocket.http.response" in extensions
        self.connected = False  # websocket.connect received
        self.accepted = False
        self.close_sent = False
        self.denied = False  # a websocket.http.response denial was sent
        self.disconnected = False
        self.count = 0  # violations so far
        self.by_server = 0  # of which the server's: its scope's and its events'
        self.scope_violations = self.counted(scope_problems(scope), by_server=True)

    def counted(self, violations, by_server=False):
        self.count += len(violations)
        if by_server:
            self.by_server += len(violations)
        return violations

    def tally(self):
        """The violations so far, in words, and whose when any are the server's."""
        if not self.count:
            return "no ASGI rule broken"
        said = f"{self.count} ASGI rule violation{'s' if self.count != 1 else ''}"
        by_application = self.count - self.by_server
        if not self.by_server:
            return said
        if not by_application:
            return f"{said}, by the server"
        return f"{said}: {self.by_server} by the server, {by_application} by the application"

    def incoming(self, event: Any) -> list[Violation]:
        """The rules an event from the server breaks."""
        event_type = event_type_of(event)
        if event_type not in INCOMING_TYPES:
            shown = event.get("type") if is_mapping(event) else event
            problem = f"a server does not send {type_repr(shown)}"
            return self.counted([broke("event.type", problem)], by_server=True)
        found = []
        if event_type == "websocket.connect":
            if self.connected:
                found.append(broke("state.connect-first", "websocket.connect came twice"))
            self.connected = True
        elif not self.connected:
            found.append(broke("state.connect-first", f"{event_type} came before websocket.connect"))
        if event_type == "websocket.receive" and (problem := payload_problem(event)):
            found.append(broke("receive.payload", problem))
        if event_type == "websocket.disconnect":
            code = event.get("code")
            if not isinstance(code, int) or isinstance(code, bool):
                found.append(broke("disconnect.code", f"code is {type_repr(code)}"))
            self.disconnected = True
        return self.counted(found, by_server=True) if found else found

    def outgoing(self, event: Any) -> list[Violation]:
        """The rules an event from the application breaks."""
        event_type = event_type_of(event)
        if event_type in DENIAL_TYPES:
            if not self.denial_response:
                problem = f"{event_type} needs the server's websocket.http.response extension"
                return self.counted([broke("event.type", problem)])
            self.denied = True
        elif event_type not in OUTGOING_TYPES:
            shown = event.get("type") if is_mapping(event) else event
            return self.counted([broke("event.type", f"an application does not send {type_repr(shown)}")])
        found = self.order_problems(event_type)
        if event_type == "websocket.accept":
            found += self.accept_problems(event)
            self.accepted = True
        elif event_type == "websocket.send" and (problem := payload_problem(event)):
            found.append(broke("send.payload", problem))
        elif event_type == "websocket.close":
            found += close_problems(event)  # before accepting, a rejection: not an error
            self.close_sent = True
        return self.counted(found) if found else found

    def order_problems(self, event_type):
        if self.disconnected:
            return [broke("state.after-disconnect", f"{event_type} after websocket.disconnect")]
        if self.close_sent:
            return [broke("state.after-close", f"{event_type} after websocket.close")]
        if event_type == "websocket.accept":
            if self.accepted:
                return [broke("state.accept-twice", "websocket.accept was already sent")]
            if not self.connected:
                return [broke("state.accept-before-connect", "websocket.connect has not been received")]
        elif event_type == "websocket.send" and not self.accepted:
            return [broke("state.send-before-accept", "the connection has not been accepted")]
        return []

    def accept_problems(self, event):
        found = []
        subprotocol = event.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            found.append(broke("accept.subprotocol", f"subprotocol is a {type_name(subprotocol)}"))
        elif subprotocol is not None and subprotocol not in self.offered:
            offered = type_repr(self.offered, limit=200) if self.offered else "none"
            found.append(
                broke("accept.subprotocol", f"{type_repr(subprotocol)} was not offered (offered: {offered})")
            )
        headers = event.get("headers")
        if headers is None:
            return found
        if isinstance(headers, (str, bytes, Mapping)) or not isinstance(headers, Iterable):
            found.append(broke("accept.headers", f"headers is a {type_name(headers)}, not a list of pairs"))
            return found
        for pair in headers:
            if not is_byte_pair(pair):
                found.append(broke("accept.headers", f"{type_repr(pair)} is not a [bytes, bytes] pair"))
            elif pair[0] != pair[0].lower():
                found.append(broke("accept.headers", f"header name {type_repr(pair[0])} is not lowercase"))
            elif pair[0] == b"sec-websocket-protocol":
                found.append(broke("accept.headers", "sec-websocket-protocol is set as a header"))
        return found


def close_problems(event):
    found = []
    code = event.get("code", 1000)
    if not isinstance(code, int) or isinstance(code, bool):
        found.append(broke("close.code", f"code is a {type_name(code)}, not int"))
    elif not is_close_code(code):
        found.append(broke("close.code", f"{code} is not a close code an endpoint may send"))
    reason = event.get("reason")
    if reason is not None and not isinstance(reason, str):
        found.append(broke("close.reason", f"reason is a {type_name(reason)}, not str"))
    elif reason is not None and (size := reason_size(reason)) > MAX_CLOSE_REASON_BYTES:
        found.append(broke("close.reason", f"reason is {size} bytes of UTF-8"))
    return found
