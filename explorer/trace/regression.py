"""A recorded connection as a pytest module: ``manage.py trace FILE --pytest CONNECTION``.

The module replays the client's side of one recorded connection (its
handshake, each frame, its close) through channels' ``WebsocketCommunicator``
against the project's ASGI application, and checks that the consumer sends
the same events back, in order. So a debugging session becomes a test.

- Timings are not compared.
- Values the recording redacted are left out of the handshake, and match
  anything in a reply. A field it hid inside a message the client sent is
  sent as ``<redacted>`` (the module says so). A channel layer's channel
  name in a reply (``/whoami``'s) matches any channel name: it is new each
  run; the connection's own name (a room's message names its sender,
  ``sc#37``) matches the replay's connection's, whose number is its own,
  the same in every reply. A reply the recording shortened must begin the same way and be as
  long. A message the client sent that the recording shortened cannot be
  sent again: the module is not made.
- What the consumer sent in answer to a channel-layer message from another
  connection is not expected (no other connection runs in the replay); an
  answer to a message it sent the layer itself is.
"""

import pprint
import re

from explorer.redaction import REDACTED_TEXT
from explorer.trace.display import Opaque, Redacted, Shortened
from explorer.trace.layer import LAYER_CALLS
from explorer.trace.recording import decode

CLIENT_EVENTS = ("websocket.connect", "websocket.receive", "websocket.disconnect")
MIN_TIMEOUT = 5  # seconds a replay waits for each event back, at least


class NotReplayableError(ValueError):
    """The recording does not hold what a replay of this connection would need."""


def as_source(value):
    """``value`` with the trace's markers turned into the calls that make them (an Opaque's repr is its
    text: here, that source)."""
    if isinstance(value, Redacted):
        return Opaque("REDACTED")
    if isinstance(value, Shortened):
        return Opaque(f"Shortened({value.head!r}, {value.length})")
    if isinstance(value, Opaque):
        return Opaque(f"Opaque({value.text!r})")
    if isinstance(value, dict):
        return {as_source(key): as_source(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_source(item) for item in value]
    if isinstance(value, tuple):
        return tuple(as_source(item) for item in value)
    return value


def has_marker(value):
    if isinstance(value, (Redacted, Shortened, Opaque)):
        return True
    if isinstance(value, dict):
        return any(has_marker(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_marker(item) for item in value)
    return False


# A channel layer's channel name (``specific..inmemory!AbC``, Redis's ``specific.AbC!dEf``): new each run.
CHANNEL_NAME = r"specific\.[\w.-]*![A-Za-z0-9]+"
PER_RUN = re.compile(f"({CHANNEL_NAME}|{re.escape(REDACTED_TEXT)})")


class OwnName:
    """The replayed connection's name as recorded (``sc#37``) and, once a reply has shown it, as the
    replay's connection has it (``sc#38``): every later reply must name that one."""

    def __init__(self, recorded):
        self.recorded = recorded if "#" in recorded else None
        self.replayed = None

    def __repr__(self):
        return f"OwnName({self.recorded!r})"

    def pattern(self, first):
        if self.replayed is not None:
            return re.escape(self.replayed)
        name = re.escape(self.recorded.rpartition("#")[0])
        return f"(?P<own>{name}#\\d+)" if first else "(?P=own)"

    def learned(self, match):
        if self.replayed is None and match.groupdict().get("own"):
            self.replayed = match["own"]

    def grown(self, head):
        """How much longer a text is in the replay for each time ``head`` names the connection."""
        if self.recorded is None or self.replayed is None:
            return 0
        return head.count(self.recorded) * (len(self.replayed) - len(self.recorded))


def per_run(own=None):
    """What is new each run in a recorded string: channel names, hidden values, and the connection's
    own name (``own``), which the replay's connection has with a number of its own."""
    if own is None or own.recorded is None:
        return PER_RUN
    return re.compile(rf"({CHANNEL_NAME}|{re.escape(REDACTED_TEXT)}|{re.escape(own.recorded)}(?!\d))")


def like(text, own=None):
    """A recorded string as a pattern: a value the recording hid in it matches anything, a channel name
    any channel name (one cut short at the end, any start of one), the connection's own name the
    replay's (``OwnName``), the rest itself."""
    named = False

    def pattern(part):
        nonlocal named
        if part == REDACTED_TEXT:
            return ".*?"
        if own is not None and part == own.recorded:
            named, first = True, not named
            return own.pattern(first)
        return CHANNEL_NAME

    parts = per_run(own).split(text)
    return "".join(re.escape(part) if index % 2 == 0 else pattern(part) for index, part in enumerate(parts))


def matched(pattern, got, own, whole):
    match = (re.fullmatch if whole else re.match)(pattern, got, re.S)
    if match and own is not None:
        own.learned(match)
    return match is not None


def same(got, want, own=None):
    """Whether an event the consumer sent is the recorded one, markers matching as the module says;
    ``own``: the connection's own name (``OwnName``)."""
    if isinstance(want, (Redacted, Opaque)):
        return True
    if isinstance(want, Shortened):
        head = want.head
        if not isinstance(got, type(head)):
            return False
        if isinstance(head, str) and per_run(own).search(head):
            if not matched(like(head, own), got, own, whole=False):
                return False
            # A hidden value: the whole may be of any length; the replay's own name, of its own length.
            return REDACTED_TEXT in head or len(got) == want.length + (own.grown(head) if own else 0)
        return got.startswith(head) and len(got) == want.length
    if isinstance(want, str) and isinstance(got, str) and per_run(own).search(want):
        return matched(like(want, own), got, own, whole=True)
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and set(got) == set(want)
            and all(same(got[key], item, own) for key, item in want.items())
        )
    if isinstance(want, (list, tuple)):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(want)
            and all(same(g, w, own) for g, w in zip(got, want, strict=True))
        )
    return got == want


def handshake(scope):
    """The path (with its query) and the headers and subprotocols a replay connects with."""
    if not isinstance(scope, dict) or not isinstance(scope.get("path"), str):
        raise NotReplayableError("its scope is not in the recording")
    query = scope.get("query_string") or b""
    if has_marker(query):
        raise NotReplayableError("the recording shortened its query string")
    path = scope["path"] + (f"?{query.decode('latin-1')}" if query else "")
    headers, left_out = [], []
    for pair in scope.get("headers") or []:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            continue
        name, value = pair
        if isinstance(name, str) and isinstance(value, str):
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
        elif isinstance(name, str):
            left_out.append(name)
    subprotocols = [name for name in scope.get("subprotocols") or [] if isinstance(name, str)]
    return path, headers, subprotocols, left_out


def steps_of(records):
    """(event the client's side sent, events the consumer sent back) for each step, and skipped notes."""
    steps, skipped, published = [], [], []
    answering = None  # where what the consumer sends now belongs: a step's replies, or nowhere
    for record in records:
        kind, event = record.get("kind"), decode(record.get("event"))
        event_type = event.get("type") if isinstance(event, dict) else None
        if kind == "in" and event_type in CLIENT_EVENTS:
            if has_marker(event):
                raise NotReplayableError(
                    f"the recording shortened what the client sent ({event_type}); record it again "
                    "with a larger EXPLORER_TRACE_MAX_PAYLOAD"
                )
            steps.append((event, []))
            answering = steps[-1][1]
        elif kind == "layer" and event_type in ("group_send", "send"):
            published.append(event.get("message"))
        elif kind == "layer" and event_type not in LAYER_CALLS and event_type is not None:
            message = {key: value for key, value in event.items() if key != "channel"}
            if message in published:  # its own message, back from the layer: the replay sends it too
                published.remove(message)
                answering = steps[-1][1] if steps else None
            else:
                answering = None
                skipped.append(f"{event_type} from the channel layer, sent by another connection")
        elif kind == "out" and event is not None:
            if answering is None:
                skipped.append(f"{event_type} in answer to a channel-layer message from elsewhere")
            else:
                answering.append(event)
    return steps, skipped


def module(records, connection, source):
    """The pytest module that replays ``connection`` from ``records`` (that connection's, in order)."""
    if not records:
        raise NotReplayableError(f"no connection {connection} in the recording")
    scope = next((r for r in records if r.get("kind") == "scope"), None)
    path, headers, subprotocols, left_out = handshake(decode(scope.get("event")) if scope else None)
    steps, skipped = steps_of(records)
    if not steps:
        raise NotReplayableError(f"{connection} received nothing from its client")
    ending = records[-1] if records[-1].get("kind") in ("exit", "error") else None
    raised = None
    if ending and ending.get("kind") == "error":
        raised = re.match(r"\w+ raised (\w+)", str(ending.get("note", "")))
        raised = raised and raised.group(1)
    slowest = max((r.get("handler") or 0 for r in records if r.get("kind") == "done"), default=0)
    consumer = scope.get("consumer") if scope else None
    name = re.sub(r"\W+", "_", connection).strip("_").lower() or "connection"
    lines = [
        f'"""Replay of {connection}, from {source}: manage.py trace {source} --pytest {connection}',
        "",
        f"{consumer or 'The application'} at {path}: the client's side is sent again through channels'",
        "WebsocketCommunicator, and the consumer must send the same events back, in order.",
        "Timings are not compared; redacted values are left out of the handshake and match anything.",
        '"""',
        "",
        "import pytest",
        "from channels.testing import WebsocketCommunicator",
        "from django.conf import settings",
        "from django.utils.module_loading import import_string",
        "",
        "from explorer.trace.display import REDACTED, Opaque, Shortened  # noqa: F401 - in STEPS",
        "from explorer.trace.regression import OwnName, same",
        "",
        f"CONNECTION = OwnName({connection!r})  # in a reply, the replay's own name, numbered its own",
        f"PATH = {path!r}",
        f"HEADERS = {pprint.pformat(headers, width=100)}",
    ]
    if left_out:
        lines.append(f"# Redacted in the recording, so left out: {', '.join(map(repr, left_out))}")
    lines += [
        f"SUBPROTOCOLS = {subprotocols!r}",
        "# Each step: what the client's side sent, then what the consumer sent back.",
        f"STEPS = {pprint.pformat(as_source(steps), width=100, sort_dicts=False)}",
    ]
    lines += [f"# Not replayed: {note}" for note in dict.fromkeys(skipped)]
    if any(REDACTED_TEXT in str(event.get("text", "")) for event, _ in steps):
        lines.append(
            f"# A value the recording hid in a message the client sent: {REDACTED_TEXT} is sent in its place"
        )
    lines += [
        f"TIMEOUT = {max(MIN_TIMEOUT, round(slowest * 2 + 1))}  # seconds to wait for each event back",
        "",
        "",
        "async def replay():",
        "    application = import_string(settings.ASGI_APPLICATION)",
        "    client = WebsocketCommunicator(application, PATH, headers=HEADERS, subprotocols=SUBPROTOCOLS)",
        "    for event, replies in STEPS:",
        "        await client.send_input(event)",
        "        for reply in replies:",
        "            got = await client.receive_output(TIMEOUT)",
        '            assert same(got, reply, CONNECTION), f"sent {got!r}, recorded {reply!r}"',
    ]
    if ending:
        lines.append("    await client.wait(TIMEOUT)")
    lines += ["", "", "@pytest.mark.asyncio"]
    if any(record.get("kind") == "query" for record in records):
        # pytest-django's mark; transactional, as channels runs the queries on its sync thread.
        lines.append("@pytest.mark.django_db(transaction=True)  # its handlers queried the database")
    lines.append(f"async def test_replay_{name}():")
    if raised:
        lines += [
            "    with pytest.raises(Exception) as failure:  # noqa: B017 - the recorded consumer raised",
            "        await replay()",
            f"    assert type(failure.value).__name__ == {raised!r}",
        ]
    else:
        lines.append("    await replay()")
    return "\n".join(lines) + "\n"
