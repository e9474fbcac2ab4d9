"""Which ASGI server runs a connection, told by the ``send`` callable it hands the application.

Each server's ``send`` is its own code: daphne's ``Server.handle_reply``
(in a ``functools.partial``), one of uvicorn's three WebSocket protocol
classes, hypercorn's ``WSStream.app_send``, granian's ``ASGIWebsocketProtocol``
(from its Rust extension), or, in tests, the ``asyncio.Queue`` of channels'
``WebsocketCommunicator``. A wrapper in between (uvicorn's message logger
under ``--log-level trace``) is looked through. What is not recognised is
an unknown server: the trace then says only what the scope's declared
``spec_version`` implies.
"""

import contextlib
import functools
from dataclasses import dataclass

from explorer import serving

# A module of the server's own code, and what it tells: (name, distribution, WebSocket implementation).
MODULES = {
    "daphne.server": ("daphne", "daphne", None),
    "uvicorn.protocols.websockets.websockets_sansio_impl": ("uvicorn", "uvicorn", "websockets-sansio"),
    "uvicorn.protocols.websockets.wsproto_impl": ("uvicorn", "uvicorn", "wsproto"),
    "uvicorn.protocols.websockets.websockets_impl": ("uvicorn", "uvicorn", "websockets"),
    "hypercorn.protocol.ws_stream": ("hypercorn", "hypercorn", None),
    "granian._granian": ("granian", "granian", None),
    "asyncio.queues": ("test", None, None),  # channels.testing's ApplicationCommunicator
}


@dataclass(frozen=True, slots=True)
class Server:
    """A server as the trace knows it. ``name`` is None for one it does not know."""

    name: str | None
    version: str | None
    implementation: str | None  # uvicorn's WebSocket implementation
    spec_version: str  # what its scope declares ("2.0" when it declares nothing)
    spec_declared: bool

    @property
    def label(self):
        if self.name == "test":
            return "no server: a test harness (channels.testing's WebsocketCommunicator)"
        if self.name is None:
            return "a server the explorer does not know"
        implementation = f" ({self.implementation})" if self.implementation else ""
        return f"{self.name} {self.version or '?'}{implementation}"

    @property
    def spec(self):
        declared = "declares" if self.spec_declared else "declares no spec_version, so"
        return f"its scope {declared} ASGI spec {self.spec_version}"


def unwrapped(send, depth=3, inside=lambda thing: ()):
    """``send`` and the callables it wraps, outermost first: a partial's function, what its closure
    cells hold, and what ``inside(thing)`` finds besides."""
    found, frontier = [], [send]
    for _ in range(depth):
        following = []
        for thing in frontier:
            found.append(thing)
            if isinstance(thing, functools.partial):
                following.append(thing.func)
            following += [*closure_of(thing), *inside(thing)]
        frontier = [thing for thing in following if callable(thing)]
    return found


def closure_of(thing):
    contents = []
    for cell in getattr(thing, "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            contents.append(cell.cell_contents)
    return contents


def module_of(thing):
    owner = getattr(thing, "__self__", None)
    module = getattr(thing, "__module__", None)
    if module is None and owner is not None:  # a builtin method, as granian's are
        module = type(owner).__module__
    return module


version_of = functools.cache(serving.version_of)  # asked at every connection


def identify(scope, send):
    """The server behind this ``send``, with what its scope declares."""
    asgi = scope.get("asgi") if isinstance(scope, dict) else None
    spec_version = asgi.get("spec_version") if isinstance(asgi, dict) else None
    spec_version, declared = (spec_version, True) if isinstance(spec_version, str) else ("2.0", False)
    for thing in unwrapped(send):
        known = MODULES.get(module_of(thing))
        if known:
            name, distribution, implementation = known
            version = version_of(distribution) if distribution else None
            return Server(name, version, implementation, spec_version, declared)
    return Server(None, None, None, spec_version, declared)
