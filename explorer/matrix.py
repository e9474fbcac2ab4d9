"""How ASGI servers differ, measured: one scripted session per behaviour, against each server.

``manage.py servers`` starts each server (``explorer.serving``) serving the
explorer, and runs every probe below against its ``/ws/ac/`` with a
websockets client. A probe asks the explorer for one thing (a close with a
reason, a denial, an empty message...) and records what reached the client
on the wire and, from the server's trace recording, what the application
was told. Nothing is assumed: every cell is what happened.
"""

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from explorer.trace.recording import written_so_far

OPEN_TIMEOUT = 8  # seconds a handshake may take; daphne's own timeout is 5
REPLY_TIMEOUT = 10
TOO_BIG = 16 * 1024 * 1024 + 1  # one byte over uvicorn's, hypercorn's and granian's limit (daphne's is 1 MiB)


@dataclass
class Observation:
    asked: str  # what the application asked for
    wire: str  # what reached the client
    app: str = ""  # what the application was told, where it matters


def describe_close(ws):
    received = ws.protocol.close_rcvd
    if received is None:
        return "no close frame (1006)"
    return f"close {int(received.code)} {received.reason!r}"


def failure(error, started):
    seconds = time.monotonic() - started
    if isinstance(error, InvalidStatus):
        body = bytes(error.response.body or b"").decode("utf-8", "replace").strip()
        return f"HTTP {error.response.status_code}" + (f" {body[:40]!r}" if body else "")
    return f"no HTTP response ({type(error).__name__}, after {seconds:.1f} s)"


class Probe:
    """One server, probed: its URL and where its trace recording is."""

    def __init__(self, server, recording):
        self.server = server
        self.recording = Path(recording)

    def url(self, query=""):
        return self.server.url("/ws/ac/" + (f"?{query}" if query else ""))

    def records(self):
        return written_so_far(self.recording)

    async def told(self, tag, event_type, timeout=5):
        """The event of ``event_type`` the application got on the connection tagged ``tag``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.records()
            mine = {
                r["connection"]
                for r in records
                if r.get("kind") == "scope" and f"tag={tag}" in json.dumps(r.get("event"))
            }
            for record in records:
                event = record.get("event") or {}
                if record.get("connection") in mine and event.get("type") == event_type:
                    return {k: v for k, v in event.items() if k != "type"}
            await asyncio.sleep(0.05)
        return None

    async def session(self, query, *texts, subprotocols=None):
        """Send ``texts``, one reply each; what came back, and how it ended (or None: still open)."""
        started = time.monotonic()
        try:
            async with connect(
                self.url(query), open_timeout=OPEN_TIMEOUT, subprotocols=subprotocols, max_size=None
            ) as ws:
                replies = []
                try:
                    for text in texts:
                        await ws.send(text)
                        replies.append(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT))
                except ConnectionClosed:
                    return ws, replies, describe_close(ws)
                except TimeoutError:
                    return ws, replies, "no reply"
                return ws, replies, None
        except (InvalidHandshake, TimeoutError, OSError) as error:
            return None, [], failure(error, started)

    # The probes: each returns an Observation.

    async def spec_version(self):
        await self.session("tag=spec")
        scope = await self.told("spec", "websocket")
        asgi = (scope or {}).get("asgi") or {}
        declared = asgi.get("spec_version")
        return Observation("—", declared or "none (so 2.0)")

    async def subprotocol(self):
        ws, _, ending = await self.session("subprotocol=b", subprotocols=["a", "b"])
        return Observation("offered a, b; accept b", ending or repr(ws.subprotocol))

    async def accept_headers(self):
        ws, _, ending = await self.session("header=X-Explorer:yes")
        wire = ending or ("sent" if "x-explorer" in ws.response.headers else "ignored")
        return Observation("x-explorer: yes", wire)

    async def close_reason(self):
        _, _, ending = await self.session("", "/close 4000 bye")
        return Observation("close 4000 'bye'", ending or "still open")

    async def denial(self):
        _, _, ending = await self.session("deny=401")
        return Observation("HTTP 401 (websocket.http.response)", ending or "accepted")

    async def empty(self, what):
        asked = f"empty {what or 'text'}"
        started = time.monotonic()
        try:
            async with connect(self.url(), open_timeout=OPEN_TIMEOUT) as ws:
                await ws.send(f"/empty {what}".strip())
                await ws.send("after")  # if the empty one is dropped, this echo comes first
                first = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
        except (InvalidHandshake, TimeoutError, OSError) as error:
            return Observation(asked, failure(error, started))
        return Observation(asked, "delivered" if first in ("", b"") else "dropped")

    async def exception_after_accept(self):
        started = time.monotonic()
        _, _, ending = await self.session("", "/raise")
        return Observation("raise after accepting", f"{ending} after {time.monotonic() - started:.1f} s")

    async def exception_before_accept(self):
        _, _, ending = await self.session("raise=1")
        return Observation("raise before accepting", ending)

    async def close_before_accept(self):
        _, _, ending = await self.session("reject=1")
        return Observation("close before accepting", ending)

    async def return_without_accept(self):
        _, _, ending = await self.session("stop=1")
        return Observation("return without accepting", ending)

    async def clients_close(self):
        async with connect(self.url("tag=clientclose"), open_timeout=OPEN_TIMEOUT) as ws:
            await ws.close(code=4001, reason="later")
        told = await self.told("clientclose", "websocket.disconnect")
        return Observation("client: close 4001 'later'", describe_close(ws), f"told {told}")

    async def over_limit(self):
        started = time.monotonic()
        try:
            async with connect(self.url("tag=big"), max_size=None, compression=None) as ws:
                try:
                    await ws.send("x" * TOO_BIG)
                    await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
                    wire = "echoed"
                except ConnectionClosed:
                    wire = describe_close(ws)
        except (InvalidHandshake, OSError) as error:
            wire = failure(error, started)
        told = await self.told("big", "websocket.disconnect")
        return Observation("client: a 16 MiB + 1 byte message", wire, f"told {told}")


# (name, what it is): the rows of the matrix, in order.
ROWS = {
    "spec_version": ("spec_version", lambda p: p.spec_version()),
    "subprotocol": ("Subprotocol chosen", lambda p: p.subprotocol()),
    "accept_headers": ("Accept headers", lambda p: p.accept_headers()),
    "close_reason": ("Close reason reaches the client", lambda p: p.close_reason()),
    "denial": ("websocket.http.response denial", lambda p: p.denial()),
    "empty_text": ("Empty text", lambda p: p.empty("")),
    "empty_bytes": ("Empty bytes", lambda p: p.empty("bytes")),
    "exception_after_accept": ("Exception after accept", lambda p: p.exception_after_accept()),
    "exception_before_accept": ("Exception before accept", lambda p: p.exception_before_accept()),
    "close_before_accept": ("Close before accept", lambda p: p.close_before_accept()),
    "return_without_accept": ("Returning without accepting", lambda p: p.return_without_accept()),
    "clients_close": ("The client's close, as the app is told", lambda p: p.clients_close()),
    "over_limit": ("Over-limit message", lambda p: p.over_limit()),
}


async def probe_all(probe, on_row=lambda name: None):
    """Every row against one server: {row: Observation}."""
    observed = {}
    for name, (_, run) in ROWS.items():
        try:
            observed[name] = await run(probe)
        except Exception as error:  # one row that cannot be observed does not stop the others
            observed[name] = Observation("", f"probe failed: {type(error).__name__}: {error}")
        on_row(name)
    return observed
