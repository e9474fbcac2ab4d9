"""Which values are credentials, and how they are hidden: one rule for the console, the recording and /scope.

A header or query parameter whose name matches one of the ``CREDENTIALS``
patterns (a setting; by default any name with token, key, secret, pass, pwd,
auth, session, sig, cookie, csrf, bearer, credential, jwt or otp in it) has
its value hidden, and so has a parameter whose own value holds one (a
``next=`` URL); so has a field of that name inside a message, as JSON
(``"password": ...``, a list or an object whole), Python (``'password': ...``),
a form (``pwd=...``) or a header line (``Authorization: ...``) writes it, in
the text or bytes of an event, its close reason, a header's value (a
Referer's query) and a channel-layer message; so has a subprotocol entry
of a form that carries one
(``CREDENTIAL_SUBPROTOCOLS``: Kubernetes' ``base64url.bearer.authorization.k8s.io.TOKEN``,
``access_token.TOKEN``, ``bearer.TOKEN``...), wherever it appears: the scope's
``subprotocols``, its ``sec-websocket-protocol`` header, and the accept
event that echoes it back. Outside the trace, so the consumers' core can use
it without it: nothing here imports the trace, or Django.
"""

import json
import re
from typing import Any, Protocol
from urllib.parse import unquote, unquote_to_bytes

REDACTED_TEXT = "<redacted>"


class Redacted:
    """A value hidden whole: the trace shows it unquoted, so it never looks like a str that says so."""

    __slots__ = ()

    def __repr__(self):
        return REDACTED_TEXT


REDACTED = Redacted()


class Rules(Protocol):
    """What to hide: the trace's config is one (``EXPLORER_TRACE``'s settings)."""

    @property
    def show_credentials(self) -> bool: ...
    @property
    def credentials(self) -> tuple[re.Pattern[str], ...]: ...
    @property
    def credential_subprotocols(self) -> tuple[re.Pattern[str], ...]: ...


def is_credential(name: str | bytes, config: Rules) -> bool:
    """Whether a header or query parameter of this name carries a credential."""
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return any(pattern.search(name) for pattern in config.credentials)


def subprotocol(entry: Any, config: Rules) -> Any:
    """A subprotocol entry, its credential part hidden if it has one."""
    if not isinstance(entry, str):
        return entry
    for pattern in config.credential_subprotocols:
        match = pattern.fullmatch(entry)
        if match:
            return (match.group(1) if match.groups() else "") + REDACTED_TEXT
    return entry


def subprotocol_header(value: str, config: Rules) -> str:
    """The ``sec-websocket-protocol`` header's value: a comma-separated list of entries."""
    return ", ".join(subprotocol(entry.strip(), config) for entry in value.split(","))


def query_string(query: Any, config: Rules) -> Any:
    """The query string with the values of credential parameters hidden, everything else as it was.

    Parameters are split at ``;`` as well as ``&``: some servers and
    frameworks read either, so a value after a ``;`` may be a parameter too.
    """
    if not isinstance(query, bytes) or b"=" not in query:
        return query
    parts = []
    for part in re.split(rb"([&;])", query):  # the separators kept, in their places
        name, equals, value = part.partition(b"=")
        if equals and (is_credential(unquote_to_bytes(name), config) or carries_one(value, config)):
            part = name + b"=" + REDACTED_TEXT.encode()
        parts.append(part)
    return b"".join(parts)


def carries_one(value: bytes, config: Rules) -> bool:
    """Whether a parameter's value holds a credential field of its own, percent-encoded as a URL to come
    back to does (``next=%2F%3Ftoken%3D...``): then the whole value is hidden."""
    readable = unquote_to_bytes(value).decode("latin-1")
    return text(readable, config) != readable


# Where a named field begins inside a message: ``"name":`` as JSON writes it (``'name':`` as Python
# does), ``name=`` as a form or a query does, or ``Name:`` at the start of a line, as a header is.
# Its value is found from there (``value_end``): a string, a list or an object whole, or a word.
FIELD = re.compile(
    r"""(?P<quote>["'])(?P<quoted>(?:\\.|(?!(?P=quote))[^\\\n]){1,64})(?P=quote)\s*:\s*"""
    r"|(?<![\w.%-])(?P<name>[A-Za-z_%][\w.%-]{0,63})="
    r"|^[ \t]*(?P<header>[A-Za-z][\w-]{0,63})[ \t]*:[ \t]*",
    re.MULTILINE,
)
CLOSING = {"[": "]", "{": "}"}


def value_end(text: str, start: int, until: str) -> int:
    """Where the value that begins at ``start`` ends: after its closing quote, after the bracket that
    closes its list or object (quotes inside it respected), else before the first of ``until``; or at
    the end of the text, for a value the trace cut short."""
    opening = text[start : start + 1]
    if opening in ('"', "'"):
        index = start + 1
        while index < len(text) and text[index] != opening:
            index += 2 if text[index] == "\\" else 1
        return min(index + 1, len(text))
    if opening in CLOSING:
        depth, index, quote = 0, start, None
        while index < len(text):
            char = text[index]
            if quote:
                if char == "\\":
                    index += 1
                elif char == quote:
                    quote = None
            elif char in "\"'":
                quote = char
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    return index + 1
            index += 1
        return len(text)
    index = start
    while index < len(text) and text[index] not in until:
        index += 1
    return index


def field_name(match: re.Match[str]) -> str:
    """The field's name as its writer meant it: JSON's escapes and a form's percent-encoding read."""
    if match["quoted"] is not None:
        try:
            return json.loads(f'"{match["quoted"]}"')
        except ValueError:
            return match["quoted"]
    if match["name"] is not None:
        return unquote(match["name"])
    return match["header"]


def text(value: str, config: Rules) -> str:
    """A message's text with the value of each field named as a credential hidden, the rest as it was."""
    if "=" not in value and ":" not in value:  # no field in it: most messages
        return value
    parts, shown_to = [], 0
    for match in FIELD.finditer(value):
        if match.start() < shown_to or not is_credential(field_name(match), config):
            continue  # inside a value already hidden, or no credential's name
        if match["quoted"] is not None:
            end, hidden = (
                value_end(value, match.end(), " \t\n,}]"),
                f"{match['quote']}{REDACTED_TEXT}{match['quote']}",
            )
        elif match["name"] is not None:
            end, hidden = value_end(value, match.end(), " \t\n&;,"), REDACTED_TEXT
        else:
            end, hidden = value_end(value, match.end(), "\r\n"), REDACTED_TEXT
        parts += [value[shown_to : match.end()], hidden]
        shown_to = end
    return "".join(parts) + value[shown_to:] if parts else value


def payload(value: Any, config: Rules) -> Any:
    """An event's ``text`` or ``bytes`` with its credential fields hidden (``text``); bytes are read as
    latin-1, which every byte is, so a binary payload comes back byte for byte where nothing is hidden.
    The start of a long payload, as the trace captured it, is read the same way."""
    head = getattr(value, "head", None)
    if head is not None:  # display.Shortened: only its start was kept
        return type(value)(payload(head, config), value.length)
    if isinstance(value, str):
        return text(value, config)
    if isinstance(value, bytes):
        return text(value.decode("latin-1"), config).encode("latin-1")
    return value


def is_byte_pair(pair: Any) -> bool:
    """Whether ``pair`` has the shape of an ASGI header: two bytes."""
    return (
        isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(part, bytes) for part in pair)
    )


# The userinfo of a URL (``http://user:password@host``): what browsers no longer send, but a client can.
USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")


def without_userinfo(text: str) -> str:
    """``text`` with the userinfo of any URL in it hidden."""
    return USERINFO.sub(f"{REDACTED_TEXT}@", text) if "@" in text else text


def header(pair: Any, config: Rules) -> Any:
    """An ASGI header (a byte pair), its value hidden if it is a credential or carries one: a
    credential's name, a subprotocol's token, a URL's userinfo or credential query parameter (an
    ``Origin``, a ``Referer``)."""
    if not is_byte_pair(pair):
        return pair
    name, value = pair
    if is_credential(name, config):
        return (name, REDACTED)
    if name.lower() == b"sec-websocket-protocol":
        return (name, subprotocol_header(value.decode("latin-1"), config).encode("latin-1"))
    readable = value.decode("latin-1")
    # A URL's userinfo and the fields of its query (an Origin's, a Referer's), or of the value itself.
    shown = text(without_userinfo(readable), config)
    return pair if shown == readable else (name, shown.encode("latin-1"))


def header_text(name: bytes, value: str, config: Rules) -> str:
    """A header's value, as text in a note, hidden as the scope shows that header (``header``)."""
    if config.show_credentials:
        return value
    shown = header((name, value.encode("latin-1")), config)[1]
    return repr(shown) if isinstance(shown, Redacted) else shown.decode("latin-1")


def event(value: dict[str, Any], config: Rules, depth: int = 0) -> dict[str, Any]:
    """An event with its credentials hidden: in its headers, the subprotocol an accept echoes, the fields
    of its text, bytes or close reason, and those of the channel-layer message it carries (a
    ``group_send``'s)."""
    if config.show_credentials:
        return value
    value = dict(value)
    if "subprotocol" in value:
        value["subprotocol"] = subprotocol(value["subprotocol"], config)
    if isinstance(value.get("headers"), (list, tuple)):
        value["headers"] = [header(pair, config) for pair in value["headers"]]
    for key in ("text", "bytes", "reason"):  # a close's reason is the application's or the client's words
        if key in value:
            value[key] = payload(value[key], config)
    if depth == 0 and isinstance(value.get("message"), dict):
        value["message"] = event(value["message"], config, depth + 1)
    return value


def scope(scope: dict[str, Any], config: Rules) -> dict[str, Any]:
    """The scope with every credential hidden: header and query values, subprotocol tokens, cookies."""
    if config.show_credentials:
        return scope
    scope = event(scope, config)
    if "query_string" in scope:
        scope["query_string"] = query_string(scope["query_string"], config)
    if isinstance(scope.get("subprotocols"), (list, tuple)):
        scope["subprotocols"] = [subprotocol(entry, config) for entry in scope["subprotocols"]]
    if isinstance(scope.get("cookies"), dict):
        scope["cookies"] = dict.fromkeys(scope["cookies"], REDACTED)
    if "session" in scope:
        scope["session"] = REDACTED
    return scope


def scope_as_json(value: dict[str, Any], config: Rules) -> str:
    """The scope as ``/scope`` answers it: credentials hidden as in the trace, bytes as latin-1 text."""
    return json.dumps(scope(value, config), indent=2, ensure_ascii=False, default=plain)


def plain(value: Any) -> str:
    """What JSON cannot say: bytes as latin-1 text (as HTTP allows), anything else as its type and str."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, Redacted):
        return REDACTED_TEXT
    try:
        text = str(value)
    except Exception as error:  # a lazy user or session that cannot be read
        return f"<{type(value).__name__} unreadable: {type(error).__name__}>"
    wrapped = getattr(value, "_wrapped", value)  # AuthMiddleware's lazy objects
    return f"<{type(wrapped).__name__}: {text}>"
