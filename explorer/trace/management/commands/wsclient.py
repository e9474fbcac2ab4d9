"""``python manage.py wsclient [URL]``: a WebSocket client that shows the handshake and every frame.

Interactive on a terminal (each line typed is sent as text; end with Ctrl-D).
With ``--send``, ``--binary``, ``--binary-file``, ``--script`` or lines piped in,
it sends those messages, waits for the replies to each, closes, and exits with a
status that says how the connection ended, for scripts and tests. Piped lines are
sent as they arrive, so a slow writer is a conversation, not a batch.

Frames are shown shortened (``--full`` shows them whole), JSON text indented,
multi-line text line by line, binary as hex; nothing a server sends reaches the
terminal as a control character or as Rich markup.
"""

import argparse
import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from explorer.trace.display import printable
from explorer.trace.entry import duration
from explorer.trace.render import command_console

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
DEFAULT_SHOWN = 2000  # characters of a frame (or of one of its lines) shown; --full shows all
SHOWN_LINES = 40  # lines of an indented frame (JSON, multi-line text) shown; --full shows all
INDENT = "  "  # a frame's lines, under the line that says what it is

STATUSES = f"""exit status: {CLOSED_NORMALLY} closed with 1000; {UNREACHABLE} could not connect;
{REFUSED} handshake refused (HTTP status); {CLOSED_WITH_CODE} closed by the server with another code;
{LOST} connection lost without a close frame; {TIMED_OUT} a scripted run went past --timeout"""


@dataclass
class Outcome:
    status: int
    summary: str


@dataclass
class Shown:
    """How one frame is shown: a line that says what it is, the lines under it, and whether any was cut."""

    head: str
    body: list
    cut: bool = False


class Number(str):
    """A JSON number (or NaN, Infinity) as the peer wrote it: pretty-printing must not round it."""


class Members(list):
    """A JSON object's members in the order sent, duplicates kept: what the peer sent, not a dict of it."""


def as_json(text):
    """The JSON object or array ``text`` holds, or None: only those are worth indenting."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(
            text, object_pairs_hook=Members, parse_float=Number, parse_int=Number, parse_constant=Number
        )
    except (ValueError, RecursionError):
        return None


def scalar(value):
    if isinstance(value, Number):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def members(value):
    """(key prefix, item) pairs of an object or array."""
    if isinstance(value, Members):
        return [(scalar(key) + ": ", item) for key, item in value]
    return [("", item) for item in value]


def inline(value, room):
    """``value`` as one line of JSON if it fits in ``room`` characters, else None; gives up as soon as
    it cannot fit, so a large frame costs little."""
    if isinstance(value, (Members, list)):
        if room < 2:
            return None
        parts, used = [], 2  # the brackets; each item gets the room left, so the whole fits
        for prefix, item in members(value):
            used += len(prefix) + (2 if parts else 0)
            text = inline(item, room - used)
            if text is None:
                return None
            parts.append(prefix + text)
            used += len(text)
        opening, closing = "{}" if isinstance(value, Members) else "[]"
        return opening + ", ".join(parts) + closing
    if room < 0 or (isinstance(value, str) and len(value) + 2 > room):
        return None
    text = scalar(value)
    return text if len(text) <= room else None


def json_lines(value, width, indent="", prefix="", suffix=""):
    """``value`` as indented JSON lines, lazily; an object or array that fits on its line stays on it."""
    text = inline(value, width - len(indent) - len(prefix) - len(suffix))
    container = isinstance(value, (Members, list))
    opening, closing = "{}" if isinstance(value, Members) else "[]"
    if text is None and container and not value:
        text = opening + closing
    if text is not None or not container:
        yield indent + prefix + (text if text is not None else scalar(value)) + suffix
        return
    yield indent + prefix + opening
    entries = members(value)
    for number, (key, item) in enumerate(entries):
        comma = "," if number < len(entries) - 1 else ""
        yield from json_lines(item, width, indent + "  ", key, comma)
    yield indent + closing + suffix


def cut_line(line, shown):
    if shown is not None and len(line) > shown:
        return f"{line[:shown]}…<{len(line):,} chars>", True
    return line, False


def body(lines, shown):
    """The first lines of a frame (all of them if ``shown`` is None), each one cut to ``shown``."""
    taken, cut = [], False
    for line in lines:
        if shown is not None and len(taken) == SHOWN_LINES:
            taken.append("… more lines")
            return taken, True
        line, long = cut_line(line, shown)
        taken.append(line)
        cut = cut or long
    return taken, cut


def hex_dump(data):
    """Binary as offset, hex and ASCII, 16 bytes a line, like ``hexdump -C``."""
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        letters = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        yield f"{offset:08x}  {chunk[:8].hex(' '):<23}  {chunk[8:].hex(' '):<23}  |{letters}|"


def shown_frame(data, shown=DEFAULT_SHOWN, width=80):
    """How a frame is shown. Text that is a JSON object or array is indented (one line if it fits);
    text with newlines is shown line by line; other text through repr; binary as length and hex.
    ``shown`` (None: everything) bounds the characters of a line and, with SHOWN_LINES, the lines.
    The caller makes every line printable."""
    if isinstance(data, bytes):
        size = f"binary {len(data):,} byte{'s' if len(data) != 1 else ''}"
        if not data:
            return Shown(size, [])
        if shown is None and len(data) > HEX_PREVIEW:
            return Shown(size, list(hex_dump(data)))
        more = len(data) > HEX_PREVIEW
        return Shown(f"{size}: {data[:HEX_PREVIEW].hex(' ')}{' …' if more else ''}", [], more)
    document = as_json(data)
    if document is not None:
        try:
            one_line = inline(document, width - len("← text JSON "))
            if one_line is not None:
                return Shown(f"text JSON {one_line}", [])
            lines, cut = body(json_lines(document, width - len(INDENT)), shown)
            return Shown(f"text JSON, {len(data):,} chars", lines, cut)
        except RecursionError:  # nested too deep to indent: shown as text
            pass
    if "\n" in data:
        lines, cut = body(data.split("\n"), shown)
        count = data.count("\n") + 1
        return Shown(f"text, {count:,} lines, {len(data):,} chars", lines, cut)
    if shown is not None and len(data) > shown:
        return Shown(f"text {repr(data[:shown])[: shown + 2]}…<{len(data):,} chars>", [], True)
    return Shown(f"text {data!r}", [])


def script_lines(file):
    return [line.rstrip("\n") for line in file if is_message(line)]


def is_message(line):
    """Blank lines and # comments in a script or a pipe are not sent."""
    return bool(line.strip()) and not line.startswith("#")


def parse_header(spec):
    name, colon, value = spec.partition(":")
    if not colon or not name.strip():
        raise CommandError(f"--header must be 'Name: value', got {spec!r}")
    return name.strip(), value.strip()


def hex_bytes(spec):
    """--binary's argument: pairs of hex digits, spaces or colons between them allowed."""
    try:
        return bytes.fromhex(spec.replace(":", " "))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not hex: {spec!r} (bytes as hex digits: '68 69' or 6869)"
        ) from None


def file_bytes(path):
    """--binary-file's argument: the file's bytes, read as the command line is, so a typo fails first."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error.strerror}") from None


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
        # --send, --binary and --binary-file append to one list: the messages go out in the order given.
        for flag, metavar, kind, what in (
            ("--send", "TEXT", str, "send this text, then wait for the replies"),
            (
                "--binary",
                "HEX",
                hex_bytes,
                "send these bytes, written in hex ('68 69' or 6869), as a binary frame",
            ),
            ("--binary-file", "PATH", file_bytes, "send this file's bytes as a binary frame"),
        ):
            parser.add_argument(
                flag,
                dest="messages",
                metavar=metavar,
                action="append",
                type=kind,
                default=[],
                help=f"{what}; repeatable",
            )
        parser.add_argument(
            "--script",
            help="then send each line of this file as text (blank lines and # comments skipped)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="seconds a scripted run may take in all, the handshake included; time spent waiting "
            "for the next piped line does not count (default 10)",
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
            help=f"show whole frames: every character, every line, binary as a hex dump (default: the "
            f"first {DEFAULT_SHOWN:,} characters, {SHOWN_LINES} lines, {HEX_PREVIEW} bytes)",
        )
        parser.add_argument(
            "--idle",
            type=float,
            default=0.3,
            help="seconds of quiet that end the replies to a message (default 0.3)",
        )

    def handle(self, *args, **options):
        self.console = command_console(self.stdout)
        headers = [parse_header(spec) for spec in options["header"]]
        messages = list(options["messages"])
        if options["script"]:
            try:
                with open(options["script"], encoding="utf-8") as script:
                    messages += script_lines(script)
            except OSError as error:
                raise CommandError(f"cannot read {options['script']}: {error.strerror}") from None
        if messages:
            source = self.given(messages)
        elif not sys.stdin.isatty():
            source = self.piped  # a script that arrives line by line, replies waited for
        else:
            source = None  # interactive
        outcome = asyncio.run(self.session(options, headers, source))
        self.say(f"■ {outcome.summary}", "yellow" if outcome.status else "green")
        if outcome.status:
            sys.exit(outcome.status)

    def say(self, text, style=None):
        self.console.print(Text(printable(text), style=style or ""), soft_wrap=True)

    def show(self, arrow, data, style):
        """A frame, made printable line by line; the first frame cut short says how to see it whole."""
        frame = shown_frame(data, self.shown, self.console.width)
        self.say(f"{arrow} {frame.head}", style)
        for line in frame.body:
            self.say(INDENT + line, style)
        if frame.cut and not self.told_full:
            self.told_full = True
            self.say("  (shortened: --full shows frames whole)", "dim")

    async def session(self, options, headers, source):
        self.ws = None
        self.budget = None
        self.typed = None  # stdin's lines, once read
        if source is None:  # interactive: as long as the person at the terminal wants
            return await self.connected(options, headers, source)
        try:
            async with asyncio.timeout(options["timeout"]) as self.budget:
                return await self.connected(options, headers, source)
        except TimeoutError:
            if self.ws is not None and self.ws.close_code is None:
                await self.ws.close(1000)
            return Outcome(TIMED_OUT, f"stopped: the run went past --timeout {options['timeout']:g} s")

    async def connected(self, options, headers, source):
        url = options["url"]
        self.shown = None if options["full"] else DEFAULT_SHOWN
        self.told_full = False
        self.replies = asyncio.Queue()
        started = time.perf_counter()
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
            took = duration(time.perf_counter() - started)
            self.say(
                f"✖ {url}: HTTP {response.status_code} {response.reason_phrase}, after {took}", "bold red"
            )
            return Outcome(REFUSED, f"handshake refused with HTTP {response.status_code}")
        except (OSError, TimeoutError, InvalidHandshake) as error:
            took = duration(time.perf_counter() - started)
            self.say(f"✖ {url}: {type(error).__name__}: {error} (after {took})", "bold red")
            return Outcome(UNREACHABLE, "could not connect")
        async with ws:
            self.handshake(url, ws, time.perf_counter() - started)
            receiving = asyncio.create_task(self.receive(ws))
            if source is None:
                await self.interactive(ws, receiving)
            else:
                await self.scripted(ws, receiving, source, options["idle"])
            if ws.close_code is None:
                await ws.close(1000)
            await receiving
        return self.outcome(ws)

    def handshake(self, url, ws, took):
        """The handshake: how long it took (TCP connect and HTTP upgrade), its status, subprotocol and
        the response's headers."""
        response = ws.response
        self.say(
            f"● connected to {url} in {duration(took)}: HTTP {response.status_code} {response.reason_phrase}",
            "bold green",
        )
        self.say(f"  subprotocol: {ws.subprotocol or 'none'}")
        table = Table(show_header=False, box=None, padding=(0, 1, 0, 2))
        for name, value in response.headers.raw_items():
            table.add_row(Text(printable(name), style="dim"), Text(printable(value)))
        self.console.print(table)

    async def receive(self, ws):
        """Print every frame as it comes, until the connection closes."""
        try:
            async for data in ws:
                self.show("←", data, "green")
                self.replies.put_nowait(data)
        except ConnectionClosed:
            pass
        self.replies.put_nowait(None)  # closed: stop waiting for replies

    async def send(self, ws, message):
        await ws.send(message)
        self.show("→", message, "cyan")

    @staticmethod
    def given(messages):
        """The messages of the command line and --script, one per call, then None."""
        remaining = iter(messages)

        async def next_message(receiving):
            return next(remaining, None)

        return next_message

    async def piped(self, receiving):
        """The next line piped in (blank lines and comments skipped) as soon as it arrives, or None at
        the end of input or once the server has closed. The --timeout clock stops while it waits: the
        writer's pace is not the server's."""
        if self.typed is None:
            self.typed = self.read_stdin()
        loop = asyncio.get_running_loop()
        while True:
            reading = asyncio.ensure_future(self.typed.get())
            left = self.budget.when() - loop.time()
            self.budget.reschedule(None)
            try:
                done, _ = await asyncio.wait({reading, receiving}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.budget.reschedule(loop.time() + left)
            if reading not in done:
                reading.cancel()
                return None
            line = reading.result()
            if not line:  # end of input
                return None
            if is_message(line):
                return line.rstrip("\n")

    def drain(self):
        """Forget the frames that came before a message was sent: they are not its replies. False if
        the connection closed meanwhile."""
        while not self.replies.empty():
            if self.replies.get_nowait() is None:
                return False
        return True

    async def scripted(self, ws, receiving, next_message, idle):
        await asyncio.sleep(0)  # let the receiver start
        while (message := await next_message(receiving)) is not None:
            if receiving.done() or not self.drain():
                break
            try:
                await self.send(ws, message)
            except ConnectionClosed:
                break
            # The replies to this message: the first whenever it comes (--timeout bounds it all), the
            # rest until idle.
            wait = None
            while True:
                try:
                    # Not asyncio.wait_for: on Python 3.11 it can swallow the cancellation that
                    # --timeout's asyncio.timeout sends when a reply lands at that instant, and a room
                    # that keeps talking then keeps the run going for ever.
                    async with asyncio.timeout(wait):
                        reply = await self.replies.get()
                except TimeoutError:
                    if self.budget is not None and self.budget.expired():
                        raise  # --timeout's, not this wait's
                    break
                if reply is None:
                    return
                wait = idle

    def read_stdin(self):
        """A queue of the lines of stdin as they are read, then "" at the end.

        A daemon thread, not the loop's executor: a read still waiting for a line must not keep the
        command from exiting once the server closes."""
        loop = asyncio.get_running_loop()
        lines = asyncio.Queue()

        def read_lines():
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "")

        threading.Thread(target=read_lines, name="wsclient.stdin", daemon=True).start()
        return lines

    async def interactive(self, ws, receiving):
        self.say("type a line to send it; Ctrl-D to close", "dim")
        typed = self.read_stdin()
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
