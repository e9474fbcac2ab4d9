"""``manage.py wsclient``: the terminal client against a real daphne, scripted and interactive."""

import contextlib
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import ROOT, free_port


def wsclient(*args):
    """Run the command; its output and exit status."""
    out = StringIO()
    try:
        call_command("wsclient", *args, stdout=out)
    except SystemExit as exit:
        return out.getvalue(), exit.code
    return out.getvalue(), 0


class Child:
    """``manage.py wsclient`` in a process of its own, its output read as it comes (bounded waits)."""

    def __init__(self, *args, stdin):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "wsclient", *args],
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.output = b""

    def read_until(self, marker, timeout=15):
        deadline = time.monotonic() + timeout
        while marker not in self.output and time.monotonic() < deadline:
            if select.select([self.process.stdout], [], [], 0.1)[0]:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.output += chunk
        assert marker in self.output, self.output.decode(errors="replace")

    def wait(self, timeout=15):
        """The exit status, once all the output is read."""
        status = self.process.wait(timeout=timeout)
        self.output += self.process.stdout.read()
        return status

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def test_a_script_drives_every_command(server, endpoint, tmp_path):
    script = tmp_path / "session.txt"
    script.write_text(
        "# every command, one per line\n"
        "hello\n/help\n/scope\n/whoami\n/bytes hi\n/burst 3 8\n/sleep 0.1\n/block 0.1\n"
        "/join room1\n/say room1 hi all\n/leave room1\n/nope\n\n"
    )
    output, status = wsclient(server.url(endpoint), "--script", script)
    assert status == 0
    for reply in [
        "← text 'hello'",
        "/say ROOM TEXT",  # in /help's reply
        '"path": "/ws/',  # /scope
        f'"kind": "{"SyncConsumer" if endpoint == "sc" else "AsyncConsumer"}"',
        "← binary 2 bytes: 68 69",
        "← text '1/3 ....'",
        "← text '3/3 ....'",
        "← text 'slept 0.1 s'",
        "← text 'blocked 0.1 s'",
        "← text 'joined room1'",
        ": hi all'",
        "← text 'left room1'",
        "← text 'error: unknown command /nope; try /help'",
    ]:
        assert reply in output
    assert output.rstrip().endswith("■ closed by the client: code 1000, reason ''")


@pytest.mark.parametrize(
    ("lines", "status", "ending"),
    [
        (["/close 4000 bye", "never sent"], 4, "closed by the server: code 4000, reason ''"),
        (["/close"], 0, "closed by the server: code 1000, reason ''"),
        (["/raise"], 4, "closed by the server: code 1011, reason ''"),
    ],
)
def test_the_exit_status_says_how_the_connection_closed(server, endpoint, lines, status, ending):
    args = [arg for line in lines for arg in ("--send", line)]
    output, code = wsclient(server.url(endpoint), *args)
    assert code == status
    assert output.rstrip().endswith(ending)
    assert "never sent" not in output


@pytest.mark.parametrize(("query", "http"), [("reject=1", 403), ("raise=1", 500)])
def test_a_refused_handshake_shows_the_http_status(server, endpoint, query, http):
    output, code = wsclient(server.url(endpoint, query), "--send", "x")
    assert code == 3
    assert f"HTTP {http}" in output


def test_nothing_listening_is_a_failure_to_connect():
    output, code = wsclient(f"ws://127.0.0.1:{free_port()}/ws/ac/", "--send", "x", "--timeout", "2")
    assert code == 1
    assert "could not connect" in output


def test_the_handshake_shows_subprotocol_and_headers_sent_and_received(server, endpoint):
    output, code = wsclient(
        server.url(endpoint, "subprotocol=chat"),
        "-s",
        "json",
        "-s",
        "chat",
        "-H",
        "X-Client: yes",
        "--send",
        "/scope",
    )
    assert code == 0
    assert "HTTP 101 Switching Protocols" in output
    assert "subprotocol: chat" in output
    assert "Sec-WebSocket-Protocol   chat" in output
    assert '"x-client",' in output  # /scope's reply shows the header sent


def test_client_text_is_shown_literally(server, endpoint):
    output, _ = wsclient(server.url(endpoint), "--send", "[bold]x[/bold] \x1b[31mred")
    assert "← text '[bold]x[/bold] \\x1b[31mred'" in output
    assert "\x1b" not in output


def test_interactive_on_a_terminal(server, endpoint):
    """Typed lines are sent as they come; Ctrl-D closes with 1000."""
    controller, terminal = pty.openpty()
    child = Child(server.url(endpoint), stdin=terminal)
    os.close(terminal)
    try:
        child.read_until(b"Ctrl-D to close")
        os.write(controller, b"hello there\n")
        child.read_until("← text 'hello there'".encode())
        os.write(controller, b"\x04")  # Ctrl-D: end of input
        assert child.wait() == 0
        child.read_until(b"closed by the client: code 1000")
    finally:
        child.stop()
        os.close(controller)


def test_piped_lines_are_sent_as_they_arrive(server, endpoint):
    """A pipe is read line by line: each line goes out, and its replies are waited for, before the
    next is written, so a slow writer holds a conversation. The --timeout clock stops while the
    client waits for the writer; at the end of input it closes with 1000."""
    child = Child(server.url(endpoint), "--timeout", "2", stdin=subprocess.PIPE)
    try:
        child.process.stdin.write(b"hello\n")
        child.process.stdin.flush()
        child.read_until("← text 'hello'".encode())  # never, if the client read to the end first
        time.sleep(2.5)  # longer than --timeout: waiting for the writer does not count
        child.process.stdin.write(b"# a comment, not sent\n\n/whoami\n")
        child.process.stdin.flush()
        child.read_until(b'"kind": ')
        child.process.stdin.close()
        assert child.wait() == 0, child.output.decode(errors="replace")
    finally:
        child.stop()
    output = child.output.decode()
    assert "a comment" not in output
    assert output.index("← text 'hello'") < output.index("→ text '/whoami'")
    assert output.rstrip().endswith("■ closed by the client: code 1000, reason ''")


def test_piped_lines_still_bound_the_wait_for_replies(server):
    """While a piped line's reply is awaited, --timeout runs: a server slower than it ends with 6."""
    child = Child(server.url("ac"), "--timeout", "1", stdin=subprocess.PIPE)
    try:
        child.process.stdin.write(b"/sleep 3\n")  # ac: asyncio.sleep, no thread held
        child.process.stdin.close()
        assert child.wait() == 6, child.output.decode(errors="replace")
    finally:
        child.stop()
    assert "stopped: the run went past --timeout 1 s" in child.output.decode()


def test_a_pipe_left_open_does_not_outlive_the_connection(server, endpoint):
    """The server closing ends the run at once, though the writer has not finished."""
    child = Child(server.url(endpoint), stdin=subprocess.PIPE)
    try:
        child.process.stdin.write(b"/close 4000 bye\n")
        child.process.stdin.flush()
        assert child.wait() == 4, child.output.decode(errors="replace")  # stdin still open
    finally:
        child.process.stdin.close()
        child.stop()
    assert child.output.decode().rstrip().endswith("closed by the server: code 4000, reason ''")


def test_a_long_frame_is_shortened_on_screen(server, endpoint):
    """A 1 MiB frame is a line of about 2,000 characters that says its size; --full shows it whole."""
    output, status = wsclient(server.url(endpoint), "--send", "/burst 1 1048576")
    assert status == 0
    assert "…<1,048,576 chars>" in output
    assert max(len(line) for line in output.splitlines()) < 2100
    assert "(shortened: --full shows frames whole)" in output
    output, status = wsclient(server.url(endpoint), "--send", "/burst 1 1048576", "--full")
    assert status == 0
    assert "." * 1_048_000 in output
    assert "shortened" not in output


def test_a_long_json_frame_is_shortened_by_lines(server, endpoint):
    """Indented JSON is cut after its first lines; --full shows every line."""
    document = json.dumps({"items": list(range(500))})
    output, _ = wsclient(server.url(endpoint), "--send", document)
    assert "← text JSON, 2,401 chars" in output
    assert "\n      37,\n  … more lines\n" in output  # 40 lines: the brace, "items" and 38 numbers
    assert "      499\n" not in output
    output, _ = wsclient(server.url(endpoint), "--send", document, "--full")
    assert "\n      498,\n      499\n    ]\n  }\n" in output


def frame_block(output, head):
    """The indented lines under the first line that starts with ``head``, dedented."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line[2:])
    return "\n".join(block)


def test_json_replies_are_indented_and_multiline_text_is_shown_line_by_line(server, endpoint):
    """/scope's and /whoami's replies are JSON: indented under the frame's line, short arrays kept on
    one line, and still JSON. /help's reply is lines of text, shown as lines."""
    output, status = wsclient(
        server.url(endpoint), "--send", "/scope", "--send", "/whoami", "--send", "/help"
    )
    assert status == 0
    scope = json.loads(frame_block(output, "← text JSON"))
    assert scope["type"] == "websocket"
    assert scope["path"] == f"/ws/{endpoint}/"
    assert '\n      ["upgrade", "websocket"],\n' in output  # a header pair on a line of its own
    whoami = output[output.index("→ text '/whoami'") :]
    assert json.loads(frame_block(whoami, "← text JSON"))["event_loop_thread"] is (endpoint == "ac")
    help_lines = frame_block(output, "← text, ").splitlines()
    assert any(line.startswith("/say ROOM TEXT") for line in help_lines)
    assert "when connecting:" in help_lines


def test_nothing_a_server_sends_becomes_escape_sequences_or_markup(server, endpoint):
    """JSON and multi-line frames are reformatted, not passed through: control characters (C0, C1,
    bidi overrides) still come out escaped, and Rich markup as the characters it is."""
    hostile = "\x1b[31m[bold red]x[/bold red]\x9b2J\u202e\x07"
    document = json.dumps({"text": hostile, "list": [hostile] * 4}, ensure_ascii=False)
    output, status = wsclient(
        server.url(endpoint), "--send", document, "--send", f"first\n{hostile}", "--full"
    )
    assert status == 0
    for raw in ("\x1b", "\x9b", "\u202e", "\x07"):
        assert raw not in output
    assert '"text": "\\u001b[31m[bold red]x[/bold red]\\x9b2J\\u202e\\u0007",' in output  # the echo too
    assert "\n  \\x1b[31m[bold red]x[/bold red]\\x9b2J\\u202e\\x07\n" in output  # a line of text


def test_binary_from_hex_and_files_goes_out_in_order_with_text(server, endpoint, tmp_path):
    """--binary, --binary-file and --send are sent in the order given; the server echoes binary as
    binary; --full shows a binary frame as a hex dump."""
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 2)
    script = tmp_path / "after.txt"
    script.write_text("last\n")
    output, status = wsclient(
        server.url(endpoint),
        "--binary",
        "00 ff:10",
        "--send",
        "middle",
        "--binary-file",
        str(data),
        "--binary",
        "6869",
        "--script",
        str(script),
        "--full",
    )
    assert status == 0, output
    expected = [
        "→ binary 3 bytes: 00 ff 10",
        "← binary 3 bytes: 00 ff 10",
        "→ text 'middle'",
        "← text 'middle'",
        "→ binary 512 bytes",
        "← binary 512 bytes",
        "→ binary 2 bytes: 68 69",
        "← binary 2 bytes: 68 69",
        "→ text 'last'",
        "← text 'last'",
    ]
    frames = [line for line in output.splitlines() if line.startswith(("→", "←"))]
    assert frames == expected
    assert "  00000040  40 41 42 43 44 45 46 47  48 49 4a 4b 4c 4d 4e 4f  |@ABCDEFGHIJKLMNO|" in output
    assert "  000001f0  f0 f1 f2 f3 f4 f5 f6 f7  f8 f9 fa fb fc fd fe ff  |................|" in output
    shortened, _ = wsclient(server.url(endpoint), "--binary-file", str(data))
    assert "← binary 512 bytes: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f …" in shortened


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--binary", "6g"], "argument --binary: not hex: '6g'"),
        (["--binary-file", "/no/such/file"], "argument --binary-file: cannot read /no/such/file"),
    ],
)
def test_bad_binary_is_refused_before_connecting(args, error):
    with pytest.raises(CommandError, match=re.escape(error)):
        wsclient(f"ws://127.0.0.1:{free_port()}/ws/ac/", *args)


def test_the_handshake_says_how_long_it_took(server, endpoint):
    """?delay holds the accept: the time shown includes it."""
    url = server.url(endpoint, "delay=0.3")
    output, status = wsclient(url, "--send", "x")
    assert status == 0
    took = re.search(rf"● connected to {re.escape(url)} in ([\d.]+)(s|ms|µs): HTTP 101", output)
    assert took, output
    assert float(took[1]) * {"s": 1, "ms": 1e-3, "µs": 1e-6}[took[2]] >= 0.3


def test_a_frame_over_the_size_limit_closes_the_connection(server, endpoint):
    output, status = wsclient(server.url(endpoint), "--send", "/burst 1 2000", "--max-size", "1000")
    assert "1009" in output  # message too big: the client refused it
    assert status != 0


def test_the_timeout_bounds_the_whole_run_while_a_room_keeps_talking(server, endpoint):
    import asyncio
    import threading

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    stop = threading.Event()

    def chatter():
        async def listen(ws):
            """Read what the room says back: frames left unread stall the connection's close."""
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass

        async def talk():
            async with connect(server.url("ac")) as ws:
                listening = asyncio.create_task(listen(ws))
                await ws.send("/join chatter")
                while not stop.is_set():
                    await ws.send("/say chatter more")
                    await asyncio.sleep(0.05)
            await listening

        asyncio.run(talk())

    talker = threading.Thread(target=chatter, daemon=True)
    talker.start()
    try:
        started = time.monotonic()
        output, status = wsclient(server.url(endpoint), "--send", "/join chatter", "--timeout", "2")
        took = time.monotonic() - started
    finally:
        stop.set()
        talker.join(timeout=10)
    assert status == 6, output
    assert "stopped: the run went past --timeout 2 s" in output
    assert "[chatter]" in output  # it heard the room until then
    assert took < 30  # bounded (generously: only that it ends)


def test_the_help_reads_cleanly():
    shown = subprocess.run(
        [sys.executable, "manage.py", "wsclient", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.startswith("usage: manage.py wsclient")
    assert "A WebSocket client that shows the handshake and every frame." in shown.stdout
    assert "`" not in shown.stdout
    assert "--binary HEX" in shown.stdout
    assert "--binary-file PATH" in shown.stdout


def test_every_option_says_what_it_does():
    from explorer.trace.management.commands.wsclient import Command

    parser = Command().create_parser("manage.py", "wsclient")
    assert all(action.help for action in parser._actions)
