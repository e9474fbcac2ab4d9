"""What the core asks a consumer to do: one small dataclass per action, and ``Action``, their union.

Each shell performs them with a ``match`` that ends in ``assert_never``, so an
action one shell forgets is a type error and, at run time, an AssertionError,
not a silent skip. Where an action's result matters (a layer call), the shell
tells the core, which decides what comes next: python-websockets' rule.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Send:
    """Send this event dict to the server."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the consumer (raise ``StopConsumer``): the connection is over."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait without holding anything: ``asyncio.sleep`` in an AsyncConsumer.

    A SyncConsumer has no other way to wait than ``time.sleep``, so there it
    holds its worker thread like ``Block``.
    """

    seconds: float


@dataclass(frozen=True, slots=True)
class Block:
    """``time.sleep`` in both: blocks the event loop (async) or the worker thread (sync)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Note:
    """Say ``text`` in the trace, on the connection's line: why a command was refused."""

    text: str


@dataclass(frozen=True, slots=True)
class Fail:
    """Raise ``DeliberateError(reason)`` in the handler, as a failing consumer would."""

    reason: str


@dataclass(frozen=True, slots=True)
class Whoami:
    """Tell the core where the handler runs, which only the consumer can see."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Tell the core the server process's figures, gathered on its event loop."""


@dataclass(frozen=True, slots=True)
class Join:
    """``group_add`` the channel to ``group``; tell the core ``joined`` or ``layer_failed``."""

    group: str


@dataclass(frozen=True, slots=True)
class Leave:
    """``group_discard`` the channel from ``group``; tell the core ``left`` or ``layer_failed``."""

    group: str


@dataclass(frozen=True, slots=True)
class Publish:
    """``group_send`` ``message`` to everyone in ``group``; tell the core only if it fails."""

    group: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Store:
    """Keep ``text``, said by ``sender`` in ``room``, in the database; tell the core only if it fails."""

    room: str
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class History:
    """Read the last ``count`` messages of ``room``; tell the core ``history`` or ``database_failed``."""

    room: str
    count: int


@dataclass(frozen=True, slots=True)
class Query:
    """Run one statement that takes ``seconds`` on the database; tell the core only if it fails.

    A SyncConsumer runs it on its worker thread; an AsyncConsumer through
    ``database_sync_to_async``, which is a hop onto that same one thread.
    """

    seconds: float


Action = (
    Send
    | Stop
    | Sleep
    | Block
    | Note
    | Fail
    | Whoami
    | Stats
    | Join
    | Leave
    | Publish
    | Store
    | History
    | Query
)


class DeliberateError(RuntimeError):
    """Raised on purpose (``/raise``, ``?raise=1``) to show what a failing handler does."""
