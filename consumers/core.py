"""What the explorer does with each event, decided without any I/O.

Both consumers hand every event to an ``ExplorerCore`` and perform the actions
it returns, in the way python-websockets keeps one sans-I/O protocol under its
sync and asyncio front ends. So every command lives here once, and the two
consumer modules differ only in how they wait and send: which is the
difference the explorer exists to show.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

# websocket.close codes an application may send through daphne: autobahn
# refuses everything else (1001-2999 are the protocol's own).
APPLICATION_CLOSE_CODES = "1000 or 3000-4999"
# A close frame's payload is at most 125 bytes, two of them the code.
MAX_CLOSE_REASON_BYTES = 123

COMMAND = re.compile(r"/(?P<name>[a-z]+)(?:\s+(?P<args>.*))?", re.DOTALL)
TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Send:
    """Send this event dict to the server."""

    event: dict


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the consumer (raise ``StopConsumer``): the connection is over."""


class DeliberateError(RuntimeError):
    """Raised on purpose (``/raise``, ``?raise=1``) to show what a failing handler does."""


class CommandError(ValueError):
    """A command the client typed is malformed; its text is the reply."""


def is_application_close_code(code):
    return code == 1000 or 3000 <= code <= 4999


def valid_close_code(word):
    try:
        code = int(word)
    except ValueError:
        raise CommandError(f"close code must be a whole number, got {word!r}") from None
    if not is_application_close_code(code):
        raise CommandError(
            f"close code {code} cannot be sent by an application through daphne; "
            f"use {APPLICATION_CLOSE_CODES}"
        )
    return code


def valid_close_reason(reason):
    size = len(reason.encode("utf-8"))
    if size > MAX_CLOSE_REASON_BYTES:
        raise CommandError(f"close reason is {size} bytes of UTF-8; the limit is {MAX_CLOSE_REASON_BYTES}")
    return reason


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What the query string asks of the handshake."""

    reject: bool = False
    subprotocol: str | None = None
    fail: bool = False

    @classmethod
    def from_query_string(cls, query_string):
        query = parse_qs(query_string.decode("latin-1"))

        def last(name):
            return query.get(name, [None])[-1]

        return cls(
            reject=(last("reject") or "").lower() in TRUE_WORDS,
            subprotocol=last("subprotocol"),
            fail=(last("raise") or "").lower() in TRUE_WORDS,
        )


def choose_subprotocol(offered, wanted):
    """The one named by ``?subprotocol=`` if offered, else the first offered."""
    if not offered:
        return None
    return wanted if wanted in offered else offered[0]


class ExplorerCore:
    """One connection's state and the explorer's replies to its events."""

    # name: (usage, what it does). The method command_<name> runs it.
    COMMANDS = {
        "help": ("/help", "list the commands and connect options"),
        "close": ("/close [CODE [REASON]]", f"the server closes; CODE is {APPLICATION_CLOSE_CODES}"),
        "raise": ("/raise", "raise an exception in the handler"),
    }
    CONNECT_OPTIONS = {
        "?reject=1": "close before accepting (HTTP 403)",
        "?subprotocol=NAME": "accept with NAME if offered, else with the first offered",
        "?raise=1": "raise in the connect handler (HTTP 500)",
    }

    def __init__(self, scope):
        self.options = ConnectOptions.from_query_string(scope.get("query_string", b""))
        self.offered_subprotocols = list(scope.get("subprotocols") or [])
        self.closing = False

    # Events in, actions out.

    def connect(self):
        if self.options.fail:
            raise DeliberateError("?raise=1: an exception before accepting")
        if self.options.reject:
            self.closing = True
            return [Send({"type": "websocket.close"})]
        accept = {"type": "websocket.accept"}
        subprotocol = choose_subprotocol(self.offered_subprotocols, self.options.subprotocol)
        if subprotocol is not None:
            accept["subprotocol"] = subprotocol
        return [Send(accept)]

    def receive(self, message):
        if self.closing:
            # Frames still arrive until the client answers our close: ignore them.
            return []
        if message.get("bytes") is not None:
            return [send_bytes(message["bytes"])]
        text = message.get("text") or ""
        match = COMMAND.fullmatch(text)
        if match is None:
            return [send_text(text)]
        name, args = match["name"], (match["args"] or "").strip()
        if name not in self.COMMANDS:
            return [send_text(f"error: unknown command /{name}; try /help")]
        try:
            return getattr(self, f"command_{name}")(args)
        except CommandError as error:
            return [send_text(f"error: {error}")]

    def disconnect(self, message):
        self.closing = True
        return [Stop()]

    # Commands: each takes the text after its name and returns actions.

    def command_help(self, args):
        rows = [*self.COMMANDS.values(), ("anything else", "echoed: text as text, bytes as bytes")]
        options = list(self.CONNECT_OPTIONS.items())
        width = max(len(usage) for usage, _ in rows + options)
        lines = [f"{usage:<{width}}  {summary}" for usage, summary in rows]
        lines += ["", "when connecting:"]
        lines += [f"{option:<{width}}  {summary}" for option, summary in options]
        return [send_text("\n".join(lines))]

    def command_close(self, args):
        words = args.split(maxsplit=1)
        event = {"type": "websocket.close", "code": valid_close_code(words[0]) if words else 1000}
        if len(words) == 2:
            event["reason"] = valid_close_reason(words[1])
        self.closing = True
        return [Send(event)]

    def command_raise(self, args):
        raise DeliberateError("/raise: an exception in the handler")


def send_text(text):
    return Send({"type": "websocket.send", "text": text})


def send_bytes(data):
    return Send({"type": "websocket.send", "bytes": data})
