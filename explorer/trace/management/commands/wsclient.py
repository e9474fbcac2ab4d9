"""``python manage.py wsclient [URL]``: a WebSocket client that shows the handshake and every frame.

Interactive on a terminal (each line typed is sent as text; end with Ctrl-D).
With ``--send``, ``--script`` or lines piped in, it sends those lines, waits
for the replies to each, closes, and exits with a status that says how the
connection ended, for scripts and tests.
"""

import asyncio
import sys
import threading
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from explorer.trace.display import printable

DEFAULT_URL = "ws://127.0.0.1:8000/ws/ac/"
HEX_PREVIEW = 16

# Exit statuses: how the connection ended.
CLOSED_NORMALLY = 0  # a close with 1000, from either side
UNREACHABLE = 1  # no WebSocket: refused, timed out, not a WebSocket server
REFUSED = 3  # the server answered the handshake with an HTTP error (403, 500)
CLOSED_WITH_CODE = 4  # the server closed with a code other than 1000
LOST = 5  # the connection ended without a close frame
TIMED_OUT = 6  # a scripted run went past --timeout: it closed the connection itself
DEFAULT_MAX_SIZE = 16 * 1024 * 1024  # bytes a frame may have; larger ones close the connection (1009)
DEFAULT_SHOWN = 2000  # characters of a frame shown; --full shows all

STATUSES = f"""exit status: {CLOSED_NORMALLY} closed with 1000; {UNREACHABLE} could not connect;
{REFUSED} handshake refused (HTTP status); {CLOSED_WITH_CODE} closed by the server with another code;
{LOST} connection lost without a close frame; {TIMED_OUT} a scripted run went past --timeout"""


@dataclass
class Outcome:
    status: int
    summary: str


def frame_text(data, shown=DEFAULT_SHOWN):
    """A frame's payload as one printable line: text through repr (the first ``shown`` characters), binary
    as length and hex."""
    if isinstance(data, str):
        if shown is not None and len(data) > shown:
            return f"text {data[:shown]!r}…<{len(data):,} chars>"
        return f"text {data!r}"
    hex_preview = data[:HEX_PREVIEW].hex(" ")
    return f"binary {len(data):,} bytes: {hex_preview}{' …' if len(data) > HEX_PREVIEW else ''}"


def script_lines(file):
    return [line.rstrip("\n") for line in file if line.strip() and not line.startswith("#")]


def parse_header(spec):
    name, colon, value = spec.partition(":")
    if not colon or not name.strip():
        raise CommandError(f"--header must be 'Name: value', got {spec!r}")
    return name.strip(), value.strip()


class Command(BaseCommand):
    help = "A WebSocket client that shows the handshake and every frame.\n\n" + STATUSES

    def add_arguments(self, parser):
        parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
        parser.add_argument(
            "-s", "--subprotocol", action="append", default=[], help="offer this subprotocol; repeatable"
        )
        parser.add_argument(
            "-H",
            "--header",
            action="append",
            default=[],
            help="send 'Name: value' in the handshake; repeatable",
        )
        parser.add_argument(
            "--send", action="append", default=[], help="send this text, then wait; repeatable"
        )
        parser.add_argument(
            "--script", help="send each line of this file (blank lines and # comments skipped)"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="seconds a scripted run may take in all, the handshake included (default 10)",
        )
        parser.add_argument(
            "--max-size",
            type=int,
            default=DEFAULT_MAX_SIZE,
            help=f"bytes a frame may have; a larger one closes with 1009 (default {DEFAULT_MAX_SIZE:,})",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help=f"show whole frames (default: the first {DEFAULT_SHOWN} characters)",
        )
        parser.add_argument(
            "--idle",
            type=float,
            default=0.3,
            help="seconds of quiet that end the replies to a line (default 0.3)",
        )

    def handle(self, *args, **options):
        self.console = Console(file=self.stdout._out, markup=False, emoji=False, highlight=False)
        headers = [parse_header(spec) for spec in options["header"]]
        lines = list(options["send"])
        if options["script"]:
            try:
                with open(options["script"], encoding="utf-8") as script:
                    lines += script_lines(script)
            except OSError as error:
                raise CommandError(f"cannot read {options['script']}: {error.strerror}") from None
        elif not lines and not sys.stdin.isatty():
            lines = script_lines(sys.stdin)  # piped in: a script, with replies waited for
        outcome = asyncio.run(self.session(options, headers, lines or None))
        self.say(f"■ {outcome.summary}", "yellow" if outcome.status else "green")
        if outcome.status:
            sys.exit(outcome.status)

    def say(self, text, style=None):
        self.console.print(Text(printable(text), style=style or ""), soft_wrap=True)

    async def session(self, options, headers, lines):
        if lines is None:  # interactive: as long as the person at the terminal wants
            return await self.connected(options, headers, lines)
        try:
            async with asyncio.timeout(options["timeout"]):
                return await self.connected(options, headers, lines)
        except TimeoutError:
            if self.ws is not None and self.ws.close_code is None:
                await self.ws.close(1000)
            return Outcome(TIMED_OUT, f"stopped: the run went past --timeout {options['timeout']:g} s")

    async def connected(self, options, headers, lines):
        url = options["url"]
        self.shown = None if options["full"] else DEFAULT_SHOWN
        self.replies = asyncio.Queue()
        self.ws = None
        try:
            ws = self.ws = await connect(
                url,
                subprotocols=options["subprotocol"] or None,
                additional_headers=headers,
                open_timeout=options["timeout"],
                max_size=options["max_size"],
            )
        except InvalidStatus as error:
            response = error.response
            self.say(f"✖ {url}: HTTP {response.status_code} {response.reason_phrase}", "bold red")
            return Outcome(REFUSED, f"handshake refused with HTTP {response.status_code}")
        except (OSError, TimeoutError, InvalidHandshake) as error:
            self.say(f"✖ {url}: {type(error).__name__}: {error}", "bold red")
            return Outcome(UNREACHABLE, "could not connect")
        async with ws:
            self.handshake(url, ws)
            receiving = asyncio.create_task(self.receive(ws))
            if lines is None:
                await self.interactive(ws, receiving)
            else:
                await self.scripted(ws, receiving, lines, options["idle"])
            if ws.close_code is None:
                await ws.close(1000)
            await receiving
        return self.outcome(ws)

    def handshake(self, url, ws):
        response = ws.response
        self.say(f"● {url}: HTTP {response.status_code} {response.reason_phrase}", "bold green")
        self.say(f"  subprotocol: {ws.subprotocol or 'none'}")
        table = Table(show_header=False, box=None, padding=(0, 1, 0, 2))
        for name, value in response.headers.raw_items():
            table.add_row(Text(printable(name), style="dim"), Text(printable(value)))
        self.console.print(table)

    async def receive(self, ws):
        """Print every frame as it comes, until the connection closes."""
        try:
            async for data in ws:
                self.say(f"← {frame_text(data, self.shown)}", "green")
                self.replies.put_nowait(data)
        except ConnectionClosed:
            pass
        self.replies.put_nowait(None)  # closed: stop waiting for replies

    async def send(self, ws, line):
        await ws.send(line)
        self.say(f"→ {frame_text(line, self.shown)}", "cyan")

    async def scripted(self, ws, receiving, lines, idle):
        await asyncio.sleep(0)  # let the receiver start
        for line in lines:
            if receiving.done():
                break
            try:
                await self.send(ws, line)
            except ConnectionClosed:
                break
            # The replies to this line: the first whenever it comes (--timeout bounds it all), the
            # rest until idle.
            wait = None
            while True:
                try:
                    reply = await asyncio.wait_for(self.replies.get(), wait)
                except TimeoutError:
                    break
                if reply is None:
                    return
                wait = idle

    async def interactive(self, ws, receiving):
        self.say("type a line to send it; Ctrl-D to close", "dim")
        loop = asyncio.get_running_loop()
        typed = asyncio.Queue()

        def read_lines():
            for line in sys.stdin:
                loop.call_soon_threadsafe(typed.put_nowait, line)
            loop.call_soon_threadsafe(typed.put_nowait, "")

        # A daemon thread, not the loop's executor: a read still waiting for a
        # line must not keep the command from exiting once the server closes.
        threading.Thread(target=read_lines, name="wsclient.stdin", daemon=True).start()
        while not receiving.done():
            reading = asyncio.ensure_future(typed.get())
            done, _ = await asyncio.wait({reading, receiving}, return_when=asyncio.FIRST_COMPLETED)
            if receiving in done:
                reading.cancel()
                break
            line = reading.result()
            if not line:  # end of input
                break
            try:
                await self.send(ws, line.rstrip("\n"))
            except ConnectionClosed:
                break

    def outcome(self, ws):
        protocol = ws.protocol
        received, sent = protocol.close_rcvd, protocol.close_sent
        if received is None and sent is not None and sent.code == 1009:
            return Outcome(LOST, f"the client closed with 1009: a frame was over --max-size ({sent.reason})")
        if received is None:
            return Outcome(LOST, "connection lost without a close frame")
        closer = "the server" if protocol.close_rcvd_then_sent else "the client"
        summary = f"closed by {closer}: code {received.code}, reason {received.reason!r}"
        if closer == "the server" and received.code != 1000:
            return Outcome(CLOSED_WITH_CODE, summary)
        return Outcome(CLOSED_NORMALLY, summary)
