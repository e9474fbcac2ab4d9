"""Turn event dicts and scopes into something safe and short to show.

Runs on the trace's listener thread, never on the event loop. The result is
made of plain Python values and three small markers whose ``repr`` is what the
trace prints, so the compact line (``repr``) and the full view
(``rich.pretty``) show the same thing. A string a client could have chosen
reaches the console only through ``repr``, which escapes control characters
and escape sequences; Rich is never asked to read markup.
"""

from dataclasses import dataclass
from itertools import islice
from typing import Any

from explorer import redaction
from explorer.redaction import REDACTED, Redacted, is_byte_pair
from explorer.trace.config import TraceConfig

MAX_DEPTH = 8
MAX_ITEMS = 100
MAX_INT_BITS = 256  # repr() of a huge int is slow, or refused outright
MIN_KEY_LIMIT = 64  # field names stay whole even under a tiny payload limit


@dataclass(slots=True, eq=False)  # eq=False: a marker is equal only to itself
class Shortened:
    """The start of a long str or bytes, and how long it really was."""

    head: Any
    length: int

    def __repr__(self):
        unit = "chars" if isinstance(self.head, str) else "bytes"
        return f"{self.head!r}…<{self.length:,} {unit}>"


@dataclass(slots=True, eq=False)
class Opaque:
    """Anything else, shown by a printable text chosen for it."""

    text: str

    def __repr__(self):
        return self.text


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every non-printable character written as an escape."""
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(printable(line) for line in text.split("\n"))
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def opaque(value, limit):
    try:
        text = repr(value)
    except Exception as error:  # a broken __repr__ must not break the trace
        text = f"<{type(value).__name__}, repr failed: {type(error).__name__}>"
    text = printable(text)
    if len(text) > limit:
        text = f"{text[:limit]}…<{len(text):,} chars>"
    return Opaque(text)


def shown(value: Any, limit: int, depth: int = 0) -> Any:
    """``value`` made short and safe: long strings cut, deep or odd things summarised."""
    if isinstance(value, (Shortened, Redacted, Opaque)):  # shown already (cut as it was captured)
        return value
    if isinstance(value, (str, bytes)):
        return value if len(value) <= limit else Shortened(value[:limit], len(value))
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= MAX_INT_BITS else Opaque(f"<int of {value.bit_length()} bits>")
    if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):
        return Opaque(f"<{type(value).__name__} nested too deep>")
    if isinstance(value, dict):
        items = {
            shown(key, max(limit, MIN_KEY_LIMIT), depth + 1): shown(item, limit, depth + 1)
            for key, item in islice(value.items(), MAX_ITEMS)
        }
        if len(value) > MAX_ITEMS:
            items[Opaque("…")] = Opaque(f"<{len(value) - MAX_ITEMS:,} more>")
        return items
    if isinstance(value, (list, tuple)):
        entries = [shown(item, limit, depth + 1) for item in islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            entries.append(Opaque(f"<{len(value) - MAX_ITEMS:,} more>"))
        return tuple(entries) if isinstance(value, tuple) else entries
    return opaque(value, limit)


def shown_headers(headers, limit):
    """ASGI's list of byte pairs, decoded (latin-1, as HTTP allows), a hidden value left hidden."""
    if not isinstance(headers, (list, tuple)):
        return shown(headers, limit)
    result = []
    for pair in islice(headers, MAX_ITEMS):
        if is_byte_pair(pair):
            name, value = (part.decode("latin-1") for part in pair)
            result.append((name, shown(value, limit)))
        elif isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], Redacted):  # hidden
            result.append((pair[0].decode("latin-1"), REDACTED))
        else:
            result.append(shown(pair, limit))  # not a byte pair: show it as it is
    if len(headers) > MAX_ITEMS:
        result.append(Opaque(f"<{len(headers) - MAX_ITEMS:,} more>"))
    return result


def shown_event(event: Any, config: TraceConfig) -> Any:
    """An ASGI event dict as the trace shows it."""
    if not isinstance(event, dict):
        return shown(event, config.max_payload)
    return shown_fields(redaction.event(event, config), config)


def shown_fields(event, config):
    """An event or scope, its credentials hidden already, field by field."""
    names = max(config.max_payload, MIN_KEY_LIMIT)  # field names and the event type stay whole
    return {
        shown(key, names): (
            shown_headers(value, config.max_payload)
            if key == "headers"
            else shown(value, names if key == "type" else config.max_payload)
        )
        for key, value in islice(event.items(), MAX_ITEMS)
    }


def shown_scope(scope: Any, config: TraceConfig) -> Any:
    """A connection scope as the trace shows it: headers decoded, credentials redacted."""
    if not isinstance(scope, dict):  # not a scope at all: shown as it is
        return shown(scope, config.max_payload)
    result = shown_fields(redaction.scope(scope, config), config)
    if isinstance(scope.get("cookies"), dict) and not config.show_credentials:
        # Every cookie's name, cut like a value: they are the client's, not the spec's field names.
        result["cookies"] = {shown(name, config.max_payload): REDACTED for name in scope["cookies"]}
    if "session" in scope:
        result["session"] = shown_session(scope["session"], config)
    if "user" in scope:
        result["user"] = shown_user(scope["user"], config)
    return result


def shown_session(session, config):
    if not config.show_credentials:
        return REDACTED
    try:
        return shown(dict(session.items()), config.max_payload)
    except Exception as error:  # an unreadable session must not break the trace
        return Opaque(f"<session unreadable: {type(error).__name__}>")


def shown_user(user, config):
    try:
        wrapped = getattr(user, "_wrapped", user)  # AuthMiddleware's lazy object
        return Opaque(f"<{type(wrapped).__name__}: {printable(str(user))[: config.max_payload]}>")
    except Exception as error:
        return Opaque(f"<user unreadable: {type(error).__name__}>")
