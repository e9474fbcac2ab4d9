"""``manage.py wsclient``: the terminal client against a real daphne, scripted and interactive."""

import os
import pty
import select
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command

from tests.conftest import ROOT, free_port


def wsclient(*args):
    """Run the command; its output and exit status."""
    out = StringIO()
    try:
        call_command("wsclient", *args, stdout=out)
    except SystemExit as exit:
        return out.getvalue(), exit.code
    return out.getvalue(), 0


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
    process = subprocess.Popen(
        [sys.executable, "manage.py", "wsclient", server.url(endpoint)],
        cwd=ROOT,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(terminal)
    output = b""

    def read_until(marker, timeout=15):
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output and time.monotonic() < deadline:
            if select.select([process.stdout], [], [], 0.1)[0]:
                output += os.read(process.stdout.fileno(), 65536)
        assert marker in output, output.decode(errors="replace")

    try:
        read_until(b"Ctrl-D to close")
        os.write(controller, b"hello there\n")
        read_until(b"\xe2\x86\x90 text 'hello there'")  # ← text
        os.write(controller, b"\x04")  # Ctrl-D: end of input
        assert process.wait(timeout=15) == 0
        read_until(b"closed by the client: code 1000")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)


def test_a_long_frame_is_shortened_on_screen(server, endpoint):
    output, status = wsclient(server.url(endpoint), "--send", "/burst 1 5000")
    assert status == 0
    assert "…<5,000 chars>" in output
    assert "." * 2100 not in output
    output, _ = wsclient(server.url(endpoint), "--send", "/burst 1 5000", "--full")
    assert "." * 4000 in output


def test_a_frame_over_the_size_limit_closes_the_connection(server, endpoint):
    output, status = wsclient(server.url(endpoint), "--send", "/burst 1 2000", "--max-size", "1000")
    assert "1009" in output  # message too big: the client refused it
    assert status != 0


def test_the_timeout_bounds_the_whole_run_while_a_room_keeps_talking(server, endpoint):
    import asyncio
    import threading

    from websockets.asyncio.client import connect

    stop = threading.Event()

    def chatter():
        async def talk():
            async with connect(server.url("ac")) as ws:
                await ws.send("/join chatter")
                while not stop.is_set():
                    await ws.send("/say chatter more")
                    await asyncio.sleep(0.05)

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
