"""What the explorer does with each event, decided without any I/O.

Both consumers hand every event to an ``ExplorerCore`` and perform the actions
it returns, in the way python-websockets keeps one sans-I/O protocol under its
sync and asyncio front ends. So every command lives here once, and the two
consumer modules differ only in how they wait and send: which is the
difference the explorer exists to show.
"""

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, overload
from urllib.parse import parse_qs

from consumers import actions
from consumers.limits import ConnectionLimits
from explorer.close_frame import APPLICATION_CLOSE_CODES, MAX_CLOSE_REASON_BYTES, is_application_close_code
from explorer.redaction import Rules, scope_as_json

MAX_SECONDS = 30
MAX_BURST_COUNT = 10_000
MAX_BURST_SIZE = 1024 * 1024
# daphne buffers what a slow client has not read yet: keep one burst affordable.
MAX_BURST_TOTAL = 64 * 1024 * 1024
DEFAULT_BURST_SIZE = 32
DENIAL_STATUSES = (400, 599)  # ?deny= statuses: a client or server error
MAX_SAID = 4096  # characters one /say may store: what the database keeps is bounded too
DEFAULT_HISTORY, MAX_HISTORY = 10, 50  # messages /history shows
MAX_ERROR = 300  # characters of a database error's text in the trace's note

COMMAND = re.compile(r"/(?P<name>[a-z]+)(?:\s+(?P<args>.*))?", re.DOTALL)
TRUE_WORDS = {"1", "true", "yes", "on"}
# channels' own rule for group names (channels.layers.BaseChannelLayer).
ROOM_NAME = re.compile(r"[a-zA-Z0-9\-_.]{1,99}", re.ASCII)
WHOLE_NUMBER = re.compile(r"[0-9]+", re.ASCII)
DECIMAL_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+", re.ASCII)
MAX_NUMBER_LENGTH = 20  # digits a number may have: int() of a long string is slow
ROOM_MESSAGE = "room.message"  # the explorer's own channel-layer event type
# RFC 9110 token characters: what a header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

Event = dict[str, Any]  # an ASGI event, or a channel-layer message


class CommandError(ValueError):
    """A command the client typed is malformed; its text is the reply."""


def valid_close_code(word: str) -> int:
    code = number(word, 0, 65535)
    if code is None:
        raise CommandError(f"close code must be a whole number, got {word!r}")
    if not is_application_close_code(code):
        raise CommandError(
            f"close code {code} cannot be sent by an application through daphne; "
            f"use {APPLICATION_CLOSE_CODES}"
        )
    return code


def valid_close_reason(reason: str) -> str:
    size = len(utf8(reason, "the close reason"))
    if size > MAX_CLOSE_REASON_BYTES:
        raise CommandError(f"close reason is {size} bytes of UTF-8; the limit is {MAX_CLOSE_REASON_BYTES}")
    return reason


def utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8, which a lone surrogate (JSON's "\\ud800" from a client) cannot be."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        surrogate = text[error.start : error.end]
        raise CommandError(f"{what} cannot be sent: {surrogate!r} is a lone surrogate, not UTF-8") from None


@overload
def number(word: object, low: float, high: float, whole: Literal[True] = True) -> int | None: ...
@overload
def number(word: object, low: float, high: float, whole: Literal[False]) -> float | None: ...


def number(word: object, low: float, high: float, whole: bool = True) -> float | None:
    """The one way a number a client sent is read: ASCII digits only, and a decimal point unless ``whole``.

    str.isdigit() takes '²' and '①', and int() and float() take '٤', ' 4',
    '4_0', '+4', 'nan' and '1e3': none of them is a number here. None if
    ``word`` is not one, or not from ``low`` to ``high``.
    """
    pattern = WHOLE_NUMBER if whole else DECIMAL_NUMBER
    if not isinstance(word, str) or len(word) > MAX_NUMBER_LENGTH or not pattern.fullmatch(word):
        return None
    value = int(word) if whole else float(word)
    return value if low <= value <= high else None


def valid_seconds(word: str, what: str) -> float:
    seconds = number(word, 0, MAX_SECONDS, whole=False)
    if seconds is None:
        raise CommandError(f"{what} takes SECONDS from 0 to {MAX_SECONDS}, got {word!r}")
    return seconds


def valid_count(word: str, what: str, low: int, high: int) -> int:
    count = number(word, low, high)
    if count is None:
        raise CommandError(f"{what} must be a whole number from {low:,} to {high:,}, got {word!r}")
    return count


def valid_room(word: str) -> str:
    if not ROOM_NAME.fullmatch(word or ""):
        raise CommandError(
            f"room names are ASCII letters, digits, hyphen, underscore and period, "
            f"under 100 characters; got {word!r}"
        )
    return word


def valid_header(spec: str) -> tuple[bytes, bytes]:
    """``NAME:VALUE`` from ``?header=`` as an ASGI byte pair."""
    name, colon, value = spec.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not HEADER_NAME.fullmatch(name):
        raise CommandError(f"header must be NAME:VALUE with NAME an HTTP token, got {spec!r}")
    if name.lower().startswith("sec-websocket-"):
        raise CommandError(f"header {name} belongs to the handshake itself; use ?subprotocol= to choose one")
    if not value.isprintable():
        raise CommandError(f"header {name} has a control character in its value")
    try:
        return (name.lower().encode("ascii"), value.encode("latin-1"))
    except UnicodeEncodeError:
        raise CommandError(f"header {name} has a value that is not latin-1") from None


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What the query string asks of the handshake, and what was wrong with it."""

    reject: bool = False
    deny: int | None = None  # a denial response with this status instead of an accept
    stop: bool = False  # stop without answering the handshake at all
    subprotocol: str | None = None
    fail: bool = False
    delay: float = 0
    headers: tuple = ()
    problems: tuple = field(default=())

    @classmethod
    def from_query_string(cls, query_string: bytes) -> "ConnectOptions":
        query = parse_qs(query_string.decode("latin-1"))
        problems: list[str] = []

        def last(name):
            return query.get(name, [None])[-1]

        def checked(validate, value, *args):
            """What ``validate`` makes of ``value`` (None for none), or None with its complaint noted."""
            if value is None:
                return None
            try:
                return validate(value, *args)
            except CommandError as error:
                problems.append(str(error))
                return None

        delay = checked(valid_seconds, last("delay"), "?delay=")
        deny = checked(valid_count, last("deny"), "?deny=", *DENIAL_STATUSES)
        headers = [checked(valid_header, spec) for spec in query.get("header", [])]
        return cls(
            reject=(last("reject") or "").lower() in TRUE_WORDS,
            deny=deny,
            stop=(last("stop") or "").lower() in TRUE_WORDS,
            subprotocol=last("subprotocol"),
            fail=(last("raise") or "").lower() in TRUE_WORDS,
            delay=delay or 0.0,
            headers=tuple(pair for pair in headers if pair),
            problems=tuple(problems),
        )


def choose_subprotocol(offered: list[str], wanted: str | None) -> str | None:
    """The one named by ``?subprotocol=`` if offered, else the first offered."""
    if not offered:
        return None
    return wanted if wanted in offered else offered[0]


class ExplorerCore:
    """One connection's state and the explorer's replies to its events."""

    # name: (usage, what it does). The method command_<name> runs it.
    COMMANDS = {
        "help": ("/help", "list the commands and connect options"),
        "scope": ("/scope", "the connection's scope as JSON, redacted as in the trace"),
        "whoami": ("/whoami", "consumer class, thread, whether it is the event loop's, channel name"),
        "stats": ("/stats", "the server process: asyncio tasks, threads, open files, memory"),
        "bytes": ("/bytes TEXT", "TEXT back as a binary frame"),
        "burst": ("/burst N [SIZE]", f"N messages of SIZE bytes (default {DEFAULT_BURST_SIZE})"),
        "sleep": ("/sleep SECONDS", "wait: asyncio.sleep (async), time.sleep (sync), then reply"),
        "block": ("/block SECONDS", "time.sleep in both: blocks the event loop or the worker thread"),
        "join": ("/join ROOM", "join a room: group_add over the channel layer"),
        "say": ("/say ROOM TEXT", "send TEXT to everyone in ROOM (you included): group_send"),
        "leave": ("/leave ROOM", "leave a room: group_discard"),
        "history": (
            "/history ROOM [N]",
            f"the last N messages said in ROOM (default {DEFAULT_HISTORY}, up to {MAX_HISTORY}): a query",
        ),
        "query": ("/query SECONDS", "one database query that takes SECONDS, on the sync thread in both"),
        "empty": ("/empty [bytes]", "an empty message back: text '' (or bytes b'')"),
        "raise": ("/raise", "raise an exception in the handler"),
        "close": ("/close [CODE [REASON]]", f"the server closes; CODE is {APPLICATION_CLOSE_CODES}"),
    }
    CONNECT_OPTIONS = {
        "?reject=1": "close before accepting (HTTP 403)",
        "?subprotocol=NAME": "accept with NAME if offered, else with the first offered",
        "?delay=SECONDS": f"wait before accepting (up to {MAX_SECONDS})",
        "?header=NAME:VALUE": "add a header to the accept event (repeatable)",
        "?raise=1": "raise in the connect handler (HTTP 500)",
        "?deny=STATUS": "deny with an HTTP response of that status (websocket.http.response), where the "
        "server supports it",
        "?stop=1": "stop without accepting or closing: the application returns",
    }

    def __init__(
        self,
        scope: Event,
        name: str = "?",
        redaction: Rules | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.scope = scope
        # How room messages from this connection are signed: the shell passes
        # the name the trace gives it (sc#3), so what a room says and the trace agree.
        self.name = name
        self.redaction = redaction  # what /scope hides; without it, /scope is refused
        self.limits = limits or ConnectionLimits()  # what this connection may make the server hold
        self.rooms: dict[str, None] = {}  # the rooms joined, in order (a dict as an ordered set)
        self.options = ConnectOptions.from_query_string(scope.get("query_string", b""))
        self.offered_subprotocols = list(scope.get("subprotocols") or [])
        self.closing = False
        # Told it has left too much unread: until it reads, what it is sent is noted in the trace alone.
        self.told_unread = False

    # Events in, actions out.

    def connect(self) -> list[actions.Action]:
        planned: list[actions.Action] = []
        problems = list(self.options.problems)
        if self.options.delay:
            refusal = self.limits.hold("sleep", self.options.delay)
            if refusal:
                problems.append(f"?delay={self.options.delay:g} refused: {refusal}")
                planned.append(actions.Note(f"?delay={self.options.delay:g} refused: {refusal}"))
            else:
                planned.append(actions.Sleep(self.options.delay))
        if self.options.fail:
            return [*planned, actions.Fail("?raise=1: an exception before accepting")]
        if self.options.stop:
            return [*planned, actions.Stop()]
        if self.options.reject:
            self.closing = True
            return [*planned, actions.Send({"type": "websocket.close"})]
        if self.options.deny:
            self.closing = True
            status = self.options.deny
            return [*planned, *denial(status, f"denied with {status} (?deny={status})\n"), actions.Stop()]
        accept: Event = {"type": "websocket.accept"}
        subprotocol = choose_subprotocol(self.offered_subprotocols, self.options.subprotocol)
        if subprotocol is not None:
            accept["subprotocol"] = subprotocol
        if self.options.headers:
            accept["headers"] = [list(pair) for pair in self.options.headers]
        planned.append(actions.Send(accept))
        # Nothing can be said before accepting: report bad options just after.
        planned += [send_text(f"error: {problem}") for problem in problems]
        return planned

    def receive(self, message: Event) -> Iterable[actions.Action]:
        if self.closing:
            # Frames still arrive until the client answers our close: ignore them.
            return []
        match = COMMAND.fullmatch(message.get("text") or "") if message.get("bytes") is None else None
        return self.answered(self.respond(message), f"the reply to /{match['name']}" if match else "the echo")

    def respond(self, message: Event) -> Iterable[actions.Action]:
        if message.get("bytes") is not None:
            return [send_bytes(message["bytes"])]
        text = message.get("text") or ""
        match = COMMAND.fullmatch(text)
        if match is None:
            return [send_text(text)]
        name, args = match["name"], (match["args"] or "").strip()
        if name not in self.COMMANDS:
            return [send_text(error_text(f"unknown command /{name}; try /help"))]
        try:
            return getattr(self, f"command_{name}")(args)
        except CommandError as error:
            return [send_text(error_text(str(error)))]

    def disconnect(self, message: Event) -> list[actions.Action]:
        self.closing = True
        return self.leaving()

    def abandoned(self) -> list[str]:
        """The consumer has ended without its disconnect handler done (the server cancelled it, a handler
        raised): the rooms it is still in, to leave with no one to tell. It is in none from now on."""
        self.closing = True
        rooms, self.rooms = list(self.rooms), {}
        self.limits.rooms = 0
        return rooms

    def leaving(self) -> list[actions.Action]:
        """Groups outlive connections: leave them one at a time, each told back, then stop."""
        return [actions.Leave(next(iter(self.rooms)))] if self.rooms else [actions.Stop()]

    def layer_unavailable(self, message: Event) -> list[actions.Action]:
        """The channel layer cannot be reached: the rooms this connection is in are paused."""
        if self.closing or not self.rooms:
            return []
        rooms = ", ".join(self.rooms)
        # What went wrong (the Redis address in it) is for the trace, which shows the event.
        return [send_text(f"error: the channel layer is unavailable; {rooms} paused")]

    def layer_restored(self, message: Event) -> list[actions.Action]:
        """The channel layer is back, perhaps empty: join the rooms again."""
        if self.closing or not self.rooms:
            return []
        return [
            *(actions.Join(room) for room in self.rooms),
            send_text(f"channel layer back; rejoined {', '.join(self.rooms)}"),
        ]

    # What the shell reports back: the result of an action that can fail.

    def joined(self, room: str) -> list[actions.Action]:
        """``actions.Join(room)`` went through: the room is joined (or, after an outage, joined again)."""
        if room in self.rooms:
            return []
        self.rooms[room] = None
        self.limits.rooms = len(self.rooms)
        return [send_text(f"joined {room}")]

    def left(self, room: str) -> list[actions.Action]:
        """``actions.Leave(room)`` went through."""
        self.rooms.pop(room, None)
        self.limits.rooms = len(self.rooms)
        return self.leaving() if self.closing else [send_text(f"left {room}")]

    def layer_failed(self, operation: str, group: str, error: Exception) -> list[actions.Action]:
        """A group_add, group_discard or group_send that the layer refused; the shell does no more."""
        if self.closing:  # nobody to tell: leave the other rooms
            self.rooms.pop(group, None)
            self.limits.rooms = len(self.rooms)
            return self.leaving()
        # The error's text names the Redis server: the trace notes it, the client is not told.
        return [send_text(f"error: {operation} failed ({type(error).__name__}); try again later")]

    def history(self, room: str, messages: list[tuple[str, str]]) -> list[actions.Action]:
        """``actions.History(room, n)`` read these (sender, text) pairs, newest first."""
        if not messages:
            return [send_text(f"no messages in {room} yet")]
        # One message to a line: a line break in one would read as another speaker's message.
        lines = [f"[{room}] {sender}: {one_line(text)}" for sender, text in reversed(messages)]
        count = f"{len(messages)} message{'s' if len(messages) != 1 else ''}"
        return [send_text(f"{count} in {room}, oldest first:\n" + "\n".join(lines))]

    def database_took(self, action: actions.Store | actions.History | actions.Query, seconds: float) -> None:
        """How long a store or a read took: what the next ones reserve of the sync thread's budget (a
        /query's hold was granted for its SECONDS)."""
        if not isinstance(action, actions.Query):
            self.limits.database_took(seconds)

    def database_failed(
        self, action: actions.Store | actions.History | actions.Query, error: Exception
    ) -> list[actions.Action]:
        """A ``Store``, ``History`` or ``Query`` the database refused; the shell does no more."""
        if self.closing:
            return []
        operation = type(action).__name__.lower()
        why = f"{type(error).__name__}: {str(error)[:MAX_ERROR]}"
        # The trace says what; the client, briefly, that it failed.
        return [
            actions.Note(f"{operation} failed: {why}"),
            send_text(f"error: {operation} failed ({type(error).__name__}); the database may be down"),
        ]

    def found(self, facts: dict[str, Any]) -> list[actions.Action]:
        """The reply to ``/whoami`` and ``/stats``: what the consumer found out, which the core cannot see."""
        return [send_text(json.dumps(facts, indent=2))]

    def room_message(self, message: Event) -> list[actions.Action]:
        """A ``room.message`` from the channel layer: pass it on to the client."""
        if self.closing:
            return []
        room, sender, text = (str(message.get(key, "?")) for key in ("room", "sender", "text"))
        # One line, as /history shows it: a line break would let a speaker write a line as another.
        return self.reply(send_text(f"[{room}] {sender}: {one_line(text)}"), f"{sender}'s message in {room}")

    def answered(self, planned: Iterable[actions.Action], what: str) -> Iterable[actions.Action]:
        """``planned``, each message it sends the client held to what the client has left unread
        (``reply``); the rest of it (a room joined or left, a close) as planned. A list stays a list; a
        burst stays a generator, checked message by message as the shell sends them."""
        if isinstance(planned, list):
            return [each for action in planned for each in self.sent(action, what)]
        return (each for action in planned for each in self.sent(action, what))

    def sent(self, action: actions.Action, what: str) -> list[actions.Action]:
        if isinstance(action, actions.Send) and action.event.get("type") == "websocket.send":
            return self.reply(action, what)
        return [action]

    def reply(self, send: actions.Send, what: str) -> list[actions.Action]:
        """``send``, if this client has not left too much unread in the server; else why not: in an error,
        once, and after it in the trace alone, until the client has read (an error for each message it
        sent meanwhile would be more for the server to hold)."""
        data = send.event.get("text")
        if isinstance(data, str):  # its UTF-8 length, without encoding a long ASCII text to learn it
            size = len(data) if data.isascii() else len(data.encode(errors="surrogatepass"))
        else:
            size = len(send.event.get("bytes") or b"")
        refusal = self.limits.reply(size)
        if refusal is None:
            self.told_unread = False
            return [send]
        why = f"{what} not sent: {refusal}"
        # Told already; or a server that has stopped writing would make the error's send wait too.
        if self.told_unread or not self.limits.writable():
            return [actions.Note(why)]
        self.told_unread = True
        held_back = "what it is sent is held back until it reads"
        text = send.event.get("text")
        if isinstance(text, str) and text.startswith("error: "):  # the core's own error (a /burst's): it goes
            said = f"{text}; {held_back}" if refusal in text else f"{text} (and {refusal}: {held_back})"
            return [actions.Note(why), send_text(said)]
        return refused(f"{why}; {held_back}")

    # Commands: each takes the text after its name and returns actions.

    def command_help(self, args):
        rows = [*self.COMMANDS.values(), ("anything else", "echoed: text as text, bytes as bytes")]
        options = list(self.CONNECT_OPTIONS.items())
        width = max(len(usage) for usage, _ in rows + options)
        lines = [f"{usage:<{width}}  {summary}" for usage, summary in rows]
        lines += ["", "when connecting:"]
        lines += [f"{option:<{width}}  {summary}" for option, summary in options]
        return [send_text("\n".join(lines))]

    def command_scope(self, args):
        if self.redaction is None:
            raise CommandError("/scope is off: this connection has no redaction rules")
        return [send_text(scope_as_json(self.scope, self.redaction))]

    def command_whoami(self, args):
        return [actions.Whoami()]

    def command_stats(self, args):
        return [actions.Stats()]

    def command_bytes(self, args):
        return [send_bytes(utf8(args, "/bytes TEXT"))]

    def command_burst(self, args):
        words = args.split()
        if not 1 <= len(words) <= 2:
            raise CommandError("usage: /burst N [SIZE]")
        count = valid_count(words[0], "/burst N", 1, MAX_BURST_COUNT)
        size = valid_count(words[1], "/burst SIZE", 1, MAX_BURST_SIZE) if len(words) == 2 else None
        size = size or DEFAULT_BURST_SIZE
        if count * size > MAX_BURST_TOTAL:
            raise CommandError(
                f"/burst {count:,} × {size:,} bytes is {count * size:,} bytes; "
                f"the limit is {MAX_BURST_TOTAL:,} in one burst"
            )
        return burst(count, size, self.limits)

    def command_sleep(self, args):
        return self.hold("sleep", args, actions.Sleep, "slept")

    def command_block(self, args):
        return self.hold("block", args, actions.Block, "blocked")

    def hold(self, command, args, action, done):
        """/sleep, /block and /query: hold a shared thread if the limits allow it, and say so after."""
        seconds = valid_seconds(args, f"/{command}")
        refusal = self.limits.hold(command, seconds)
        if refusal:
            return refused(f"/{command} {seconds:g} refused: {refusal}")
        return [action(seconds), send_text(f"{done} {seconds:g} s")]

    def command_join(self, args):
        room = valid_room(args)
        if room in self.rooms:
            raise CommandError(f"already in room {room}")
        refusal = self.limits.join()
        if refusal:
            raise CommandError(refusal)
        return [actions.Join(room)]

    def command_leave(self, args):
        room = valid_room(args)
        if room not in self.rooms:
            raise CommandError(f"not in room {room}")
        return [actions.Leave(room)]

    def command_say(self, args):
        room, _, text = args.partition(" ")
        room = valid_room(room)
        if room not in self.rooms:
            raise CommandError(f"join {room} first: /join {room}")
        if not text.strip():
            raise CommandError("usage: /say ROOM TEXT")
        if len(text) > MAX_SAID:
            raise CommandError(f"/say TEXT is {len(text):,} characters; the limit is {MAX_SAID:,}")
        if "\x00" in text:  # SQLite keeps it; one rule for every database
            raise CommandError("/say TEXT cannot hold a NUL character (\\x00): PostgreSQL cannot keep it")
        message = {"type": ROOM_MESSAGE, "room": room, "sender": self.name, "text": text}
        refusal = self.limits.database()
        if refusal:  # the room still hears it, as when the database is down
            return [actions.Publish(room, message), *refused(f"said in {room}, but not kept: {refusal}")]
        return [actions.Publish(room, message), actions.Store(room, self.name, text)]

    def command_history(self, args):
        words = args.split()
        if not 1 <= len(words) <= 2:
            raise CommandError("usage: /history ROOM [N]")
        room = valid_room(words[0])
        count = valid_count(words[1], "/history N", 1, MAX_HISTORY) if len(words) == 2 else DEFAULT_HISTORY
        refusal = self.limits.database()
        if refusal:
            return refused(f"/history {room} refused: {refusal}")
        return [actions.History(room, count)]

    def command_query(self, args):
        return self.hold("query", args, actions.Query, "queried")

    def command_raise(self, args):
        return [actions.Fail("/raise: an exception in the handler")]

    def command_empty(self, args):
        if args not in ("", "bytes", "text"):
            raise CommandError("usage: /empty [bytes]")
        return [send_bytes(b"") if args == "bytes" else send_text("")]

    def command_close(self, args):
        words = args.split(maxsplit=1)
        event = {"type": "websocket.close", "code": valid_close_code(words[0]) if words else 1000}
        if len(words) == 2:
            event["reason"] = valid_close_reason(words[1])
        self.closing = True
        return [actions.Send(event)]


def burst(count: int, size: int, limits: ConnectionLimits) -> Iterator[actions.Action]:
    """``count`` numbered text messages of exactly ``size`` bytes, one at a time, while the budget lasts."""
    filler = "." * size
    holding = limits.holding_as_it_goes("burst")  # it holds its handler's thread while it sends
    try:
        for number in range(1, count + 1):
            refusal = limits.send(size) or holding.check()
            if refusal:
                why = f"/burst stopped after {number - 1:,} of {count:,} messages: {refusal}"
                # A server that has stopped writing would make the reply's send wait too.
                yield from refused(why) if limits.writable() else [actions.Note(why)]
                return
            label = f"{number}/{count} "
            yield send_text((label + filler)[:size])
    finally:
        holding.done()


MAX_ERROR = 300  # characters of an error reply: one quoting a client's long input says its length instead


def error_text(problem: str) -> str:
    if len(problem) > MAX_ERROR:
        problem = f"{problem[:MAX_ERROR]}…<{len(problem):,} chars>"
    return f"error: {problem}"


def refused(why: str) -> list[actions.Action]:
    """What a budget's refusal is: a line in the trace and an error the client reads."""
    return [actions.Note(why), send_text(f"error: {why}")]


def denial(status: int, body: str) -> list[actions.Action]:
    """A handshake answered with an HTTP response (the websocket.http.response extension)."""
    return [
        actions.Send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        ),
        actions.Send({"type": "websocket.http.response.body", "body": body.encode("utf-8")}),
    ]


def one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def send_text(text: str) -> actions.Send:
    return actions.Send({"type": "websocket.send", "text": text})


def send_bytes(data: bytes) -> actions.Send:
    return actions.Send({"type": "websocket.send", "bytes": data})
