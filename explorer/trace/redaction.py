"""Which values are credentials, and how they are hidden: one rule for the console, the recording and /scope.

A header or query parameter whose name matches one of the ``CREDENTIALS``
patterns (a setting; by default any name with token, key, secret, passw,
auth, session, sig, cookie, csrf, bearer, credential, jwt or otp in it) has
its value hidden; so has a subprotocol entry of a form that carries one
(``CREDENTIAL_SUBPROTOCOLS``: Kubernetes' ``base64url.bearer.authorization.k8s.io.TOKEN``,
``access_token.TOKEN``, ``bearer.TOKEN``...), wherever it appears: the scope's
``subprotocols``, its ``sec-websocket-protocol`` header, and the accept
event that echoes it back. Nothing here imports the rest of the trace.
"""

from urllib.parse import unquote_to_bytes

REDACTED_TEXT = "<redacted>"


def is_credential(name, config):
    """Whether a header or query parameter of this name carries a credential."""
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return any(pattern.search(name) for pattern in config.credentials)


def subprotocol(entry, config):
    """A subprotocol entry, its credential part hidden if it has one."""
    if not isinstance(entry, str):
        return entry
    for pattern in config.credential_subprotocols:
        match = pattern.fullmatch(entry)
        if match:
            return (match.group(1) if match.groups() else "") + REDACTED_TEXT
    return entry


def subprotocol_header(value, config):
    """The ``sec-websocket-protocol`` header's value: a comma-separated list of entries."""
    return ", ".join(subprotocol(entry.strip(), config) for entry in value.split(","))


def query_string(query, config):
    """The query string with the values of credential parameters hidden, everything else as it was."""
    if not isinstance(query, bytes) or b"=" not in query:
        return query
    parts = []
    for part in query.split(b"&"):
        name, equals, _ = part.partition(b"=")
        if equals and is_credential(unquote_to_bytes(name), config):
            part = name + b"=" + REDACTED_TEXT.encode()
        parts.append(part)
    return b"&".join(parts)
