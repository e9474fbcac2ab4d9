"""The trace in a project of its own: the Channels tutorial's chat, with ``explorer`` installed by pip.

``tests/chat_project`` is copied out of the repository and served by a real
daphne from there, with this repository installed (``pip install --target``)
as a user would install it, so nothing of the explorer's own is on the path:
only the two lines the README asks for (``"explorer.trace"`` in
``INSTALLED_APPS``, ``TraceMiddleware`` in ``asgi.py``).
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.conftest import ROOT, DaphneServer, read_records

CHAT = ROOT / "tests" / "chat_project"
FLAVOURS = {"sc": ("chat", "ChatConsumer"), "ac": ("achat", "AsyncChatConsumer")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """This repository, installed with pip into a folder of its own, and the chat project beside it."""
    base = tmp_path_factory.mktemp("your_project")
    source = base / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "explorer", source / "explorer", ignore=shutil.ignore_patterns("__pycache__"))
    site = base / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(source)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    project = base / "chat_project"
    shutil.copytree(CHAT, project, ignore=shutil.ignore_patterns("__pycache__"))
    return project, site


def project_env(site, **env):
    return {
        **os.environ,
        "PYTHONPATH": str(site),
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "COLUMNS": "200",
        **env,
    }


def run_in(installed, *args, timeout=60, check=True):
    """``python ARGS`` in the chat project, with only the installed package beside it."""
    project, site = installed
    return subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=project_env(site),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


@pytest.fixture(scope="module")
def chat(installed, tmp_path_factory):
    project, site = installed
    recording = tmp_path_factory.mktemp("chat_trace") / "trace.jsonl"
    daphne = DaphneServer(
        recording,
        application="chatsite.asgi:application",
        cwd=project,
        PYTHONPATH=str(site),
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        COLUMNS="200",
    )
    yield daphne
    daphne.stop()


def chat_url(server, path):
    return f"ws://127.0.0.1:{server.port}/ws/{path}/"


def chat_connect(server, path):
    # channels' AllowedHostsOriginValidator, as the tutorial has it, wants an Origin.
    return connect(chat_url(server, path), origin=f"http://127.0.0.1:{server.port}")


def records_of(server, prefix, kind=None):
    return [
        r
        for r in read_records(server.recording)
        if r["connection"].startswith(prefix) and (kind is None or r["kind"] == kind)
    ]


def connection_at(server, name, path):
    """The id of the one connection of consumer ``name`` at ``path``, once it has exited."""
    deadline = time.monotonic() + 10
    while not (
        found := {
            r["connection"] for r in records_of(server, f"{name}#", "scope") if r["event"]["path"] == path
        }
    ):
        assert time.monotonic() < deadline, f"no {name} at {path}"
        time.sleep(0.02)
    [connection] = found
    server.records_of(connection)  # waits for its exit line
    return connection


def test_the_trace_comes_from_the_installed_package(installed):
    _, site = installed
    found = run_in(installed, "-c", "import explorer.trace; print(explorer.trace.__file__)")
    assert Path(found.stdout.strip()).is_relative_to(site)
    # Only the trace is installed: the explorer's own consumers stay in the clone.
    assert not (site / "consumers").exists() and not (site / "routing").exists()


@pytest.mark.parametrize("sender", list(FLAVOURS))
async def test_the_tutorial_chat_is_traced_without_a_line_of_trace_code(chat, sender):
    room = f"lobby{sender}"
    (sync_path, sync_name), (async_path, async_name) = FLAVOURS["sc"], FLAVOURS["ac"]
    async with (
        chat_connect(chat, f"{sync_path}/{room}") as sync_client,
        chat_connect(chat, f"{async_path}/{room}") as async_client,
    ):
        talker = sync_client if sender == "sc" else async_client
        await talker.send(json.dumps({"message": f"hello from {sender}"}))
        for client in (sync_client, async_client):
            reply = await asyncio.wait_for(client.recv(), 10)
            assert json.loads(reply) == {"message": f"hello from {sender}"}
    for path, name, looping in ((sync_path, sync_name, False), (async_path, async_name, True)):
        records = read_records(chat.recording, connection_at(chat, name, f"/ws/{path}/{room}/"))
        assert records[0]["kind"] == "scope"
        assert records[0]["consumer"] == f"chat.consumers.{name}"
        assert records[0]["event"]["url_route"]["kwargs"] == {"room_name": room}
        handled = [r for r in records if r["kind"] in ("in", "done")]
        threads = {r["thread"] for r in handled}
        if looping:
            assert threads == {"MainThread"}
        else:
            [worker] = threads
            assert worker.startswith("ThreadPoolExecutor")
        assert all(r["handler"] >= 0 for r in records if r["kind"] == "done")
        hops = [r["event"]["type"] for r in records if r["kind"] == "layer"]
        said = ["group_send"] if (sender == "sc") != looping else []
        assert hops == ["group_add", *said, "chat.message", "group_discard"]
        [message] = [r for r in records if r["kind"] == "layer" and r["event"]["type"] == "chat.message"]
        assert message["event"]["message"] == f"hello from {sender}"
        assert message["thread"] == threads.pop()
        assert records[-1]["kind"] == "exit"
        assert records[-1]["note"] == "consumer returned; no ASGI rule broken"


@pytest.mark.parametrize("endpoint", list(FLAVOURS))
async def test_a_handshake_that_waited_for_the_sync_thread_names_the_handler_that_held_it(chat, endpoint):
    path, name = FLAVOURS[endpoint]
    async with chat_connect(chat, "report") as report:
        await report.send(json.dumps({"seconds": 1.5}))
        await asyncio.sleep(0.3)  # the report's sync handler holds the thread now
        async with chat_connect(chat, f"{path}/waiting{endpoint}") as late:
            assert json.loads(await asyncio.wait_for(report.recv(), 10)) == {"report": "ready"}
            await late.send(json.dumps({"message": "made it"}))
            assert json.loads(await asyncio.wait_for(late.recv(), 10)) == {"message": "made it"}
    connection = connection_at(chat, name, f"/ws/{path}/waiting{endpoint}/")
    [connect_in] = [
        r for r in read_records(chat.recording, connection) if r["kind"] == "in" and r["seconds"] == 0
    ]
    # The handshake reached the consumer only when the report's handler let go.
    assert connect_in["wait"] >= 0.5
    assert connect_in["slow"] is True
    [why] = [n for n in connect_in["notes"] if n.startswith("waited")]
    assert "for the sync thread, held by ReportConsumer#" in why
    assert "before the consumer started" in why  # AuthMiddlewareStack's user lookup waited too


def test_the_trace_and_wsclient_commands_are_there_in_that_project(chat, installed):
    project, _ = installed
    origin = f"Origin: http://127.0.0.1:{chat.port}"
    message = json.dumps({"message": "via wsclient"})
    client = run_in(
        installed,
        "manage.py",
        "wsclient",
        chat_url(chat, "chat/cmds"),
        "-H",
        origin,
        "--send",
        message,
        check=False,
    )
    assert "via wsclient" in client.stdout, client.stdout + client.stderr
    connection_at(chat, "ChatConsumer", "/ws/chat/cmds/")
    shown = run_in(
        installed, "manage.py", "trace", str(chat.recording), "-e", "/ws/chat/cmds/", "--width", "200"
    )
    lines = [line for line in shown.stdout.splitlines() if "#" in line and "→ in" in line]
    assert lines and all("ChatConsumer#" in line for line in lines)
    assert "{'text': '{\"message\": \"via wsclient\"}'}" in shown.stdout
    # The shareable page takes its script and styles from the installed package.
    page = project / "trace.html"
    run_in(installed, "manage.py", "trace", str(chat.recording), "--html", str(page))
    assert "via wsclient" in page.read_text() and "function" in page.read_text()


@pytest.mark.parametrize("endpoint", list(FLAVOURS))
async def test_a_recorded_chat_connection_becomes_a_test_that_passes_in_that_project(
    chat, installed, endpoint
):
    project, _ = installed
    path, name = FLAVOURS[endpoint]
    room = f"replay{endpoint}"
    # The other client is of the other flavour, so the recorded one is the only `name` in the room.
    other_path = FLAVOURS["ac" if endpoint == "sc" else "sc"][0]
    async with (
        chat_connect(chat, f"{path}/{room}") as recorded,
        chat_connect(chat, f"{other_path}/{room}") as other,
    ):
        for text in ("one", "two"):
            await recorded.send(json.dumps({"message": text}))
            for client in (recorded, other):
                assert json.loads(await asyncio.wait_for(client.recv(), 10)) == {"message": text}
        await other.send(json.dumps({"message": "from elsewhere"}))
        assert json.loads(await asyncio.wait_for(recorded.recv(), 10)) == {"message": "from elsewhere"}
    connection = connection_at(chat, name, f"/ws/{path}/{room}/")
    made = run_in(installed, "manage.py", "trace", str(chat.recording), "--pytest", connection)
    source = made.stdout
    assert "# Not replayed: chat.message from the channel layer, sent by another connection" in source
    test_file = project / f"test_replay_{endpoint}.py"
    test_file.write_text(source)
    ran = run_in(
        installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file.name, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout
    # And it is a real check: a different reply fails it.
    changed = source.replace(
        """'websocket.send', 'text': '{"message": "one"}'""",
        """'websocket.send', 'text': '{"message": "uno"}'""",
    )
    assert changed != source
    test_file.write_text(changed)
    ran = run_in(
        installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file.name, timeout=120, check=False
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
