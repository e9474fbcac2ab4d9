"""What a WebSocket close frame may carry: one rule for the core, the trace's checks and its server notes.

RFC 6455 5.5.1 and 7.4. Outside the trace, so the consumers' core can use it
without it: nothing here imports the trace, or Django.
"""

# A close frame's payload is at most 125 bytes, two of them the code.
MAX_CLOSE_REASON_BYTES = 123
# RFC 6455 7.4.1: codes that are never put in a close frame.
NEVER_SENT_CODES = frozenset({1004, 1005, 1006, 1015})
# What an application may send through daphne: autobahn refuses everything
# else, as 1001-2999 are the protocol's own.
APPLICATION_CLOSE_CODES = "1000 or 3000-4999"


def is_close_code(code: int) -> bool:
    """Whether the protocol lets an endpoint put ``code`` in a close frame."""
    return 1000 <= code <= 4999 and code not in NEVER_SENT_CODES and not 1016 <= code <= 2999


def is_application_close_code(code: int) -> bool:
    """Whether ``code`` is one of ``APPLICATION_CLOSE_CODES``."""
    return code == 1000 or 3000 <= code <= 4999


def reason_size(reason: str) -> int:
    """The reason's size in UTF-8; a lone surrogate counts as the 3 bytes a server would try to send."""
    return len(reason.encode("utf-8", "surrogatepass"))
