"""Rooms across processes: two daphne servers sharing a real redis-server through channels_redis."""

import asyncio
import os
import shutil
from io import StringIO

import pytest
from django.core.management import call_command
from websockets.asyncio.client import connect

from explorer.trace.display import Shortened
from explorer.trace.recording import decode
from tests.conftest import WIRE_ENV, DaphneServer, RedisServer


@pytest.fixture(scope="module")
def two_servers(redis_server, tmp_path_factory):
    servers = []
    try:
        for name in ("first", "second"):
            recording = tmp_path_factory.mktemp(name) / "trace.jsonl"
            servers.append(DaphneServer(recording, REDIS_URL=redis_server.url, **WIRE_ENV))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize(("speaker", "listener"), [("sc", "ac"), ("ac", "sc")])
async def test_a_message_crosses_from_one_process_to_the_other(two_servers, speaker, listener):
    first, second = two_servers
    room = f"across-{speaker}"
    async with connect(first.url(speaker)) as speaking, connect(second.url(listener)) as listening:
        for ws in (speaking, listening):
            await ws.send(f"/join {room}")
            assert await ws.recv() == f"joined {room}"
        speaker_id = first.connection_of(speaking.local_address[1])
        listener_id = second.connection_of(listening.local_address[1])
        await speaking.send(f"/say {room} hello from the first process")
        expected = f"[{room}] {speaker_id}: hello from the first process"
        assert await asyncio.wait_for(listening.recv(), 10) == expected
        assert await asyncio.wait_for(speaking.recv(), 10) == expected
    # The hop shows in both traces: sent on the first, received on the second.
    sent = [r for r in first.records_of(speaker_id) if r["kind"] == "layer"]
    received = [r for r in second.records_of(listener_id) if r["kind"] == "layer"]
    [group_send] = [r for r in sent if r["event"]["type"] == "group_send"]
    assert group_send["event"]["group"] == room
    [room_message] = [r for r in received if r["event"]["type"] == "room.message"]
    assert room_message["event"]["sender"] == speaker_id
    channel = room_message["event"]["channel"]
    channel = channel.get("$shortened") if isinstance(channel, dict) else channel  # the servers cut at 64
    assert channel.startswith("specific.") and "!" in channel  # channels_redis: specific.PROCESS!CHANNEL
    # Both recordings as one timeline: each connection named after its process's file, and the
    # message followed from the group_send in one process to the room.message in the other.
    copies = []
    for name, server in (("first", first), ("second", second)):
        copies.append(server.recording.parent / f"{name}.jsonl")
        shutil.copy(server.recording, copies[-1])
    out = StringIO()
    call_command("trace", *map(str, copies), "--width", "250", stdout=out)
    lines = out.getvalue().splitlines()
    sending = next(
        i for i, line in enumerate(lines) if f"first:{speaker_id} " in line and "group_send" in line
    )
    arriving = next(
        i for i, line in enumerate(lines) if f"second:{listener_id} " in line and "room.message" in line
    )
    assert sending < arriving  # merged by time
    assert f"sent by first:{speaker_id}'s group_send" in " ".join(lines[arriving : arriving + 3])


def require_redis_server():
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing; .ci/run installs it (apt-get install redis-server)")
        pytest.skip("redis-server is not installed here (Debian: apt-get install redis-server)")


async def test_a_redis_outage_pauses_rooms_clearly_and_they_come_back(tmp_path_factory):
    """Redis stops mid-conversation: both rooms' clients are told, nothing closes, and rooms resume."""
    require_redis_server()
    redis = RedisServer(tmp_path_factory.mktemp("redis-outage"))
    servers = []
    try:
        for name in ("first", "second"):
            recording = tmp_path_factory.mktemp(name) / "trace.jsonl"
            servers.append(DaphneServer(recording, REDIS_URL=redis.url, **WIRE_ENV))
        first, second = servers
        async with connect(first.url("sc")) as sync_ws, connect(second.url("ac")) as async_ws:
            for ws in (sync_ws, async_ws):
                await ws.send("/join lobby")
                assert await ws.recv() == "joined lobby"
            await sync_ws.send("/say lobby before")
            for ws in (sync_ws, async_ws):
                assert (await ws.recv()).endswith(": before")

            redis.stop()
            for ws in (sync_ws, async_ws):
                told = await asyncio.wait_for(ws.recv(), 15)
                # Clients are told it is unavailable, not where it is: the address is for the trace.
                assert told == "error: the channel layer is unavailable; lobby paused"
            await async_ws.send("/say lobby during")
            failed = await asyncio.wait_for(async_ws.recv(), 15)
            assert failed.startswith("error: group_send failed (") and "127.0.0.1" not in failed
            await sync_ws.send("still echoing")
            assert await asyncio.wait_for(sync_ws.recv(), 15) == "still echoing"

            redis = RedisServer(tmp_path_factory.mktemp("redis-back"), port=redis.port)  # back, and empty
            for ws in (sync_ws, async_ws):
                assert await asyncio.wait_for(ws.recv(), 15) == "channel layer back; rejoined lobby"
            await async_ws.send("/say lobby after")
            for ws in (sync_ws, async_ws):
                assert (await asyncio.wait_for(ws.recv(), 15)).endswith(": after")
            sync_id = first.connection_of(sync_ws.local_address[1])
            async_id = second.connection_of(async_ws.local_address[1])
        for server, connection in ((first, sync_id), (second, async_id)):
            records = server.records_of(connection)
            layer_events = [r["event"]["type"] for r in records if r["kind"] == "layer"]
            assert "layer.unavailable" in layer_events and "layer.restored" in layer_events
            [unavailable] = [
                r for r in records if r["kind"] == "layer" and r["event"]["type"] == "layer.unavailable"
            ]
            # The trace keeps the detail, shortened like any long string (which error redis-py raises
            # depends on when the receive noticed: "Connection closed by server." or a longer
            # "Error 111 connecting to 127.0.0.1:…").
            error = decode(unavailable["event"]["error"])
            assert str(error.head if isinstance(error, Shortened) else error).startswith("ConnectionError")
            assert records[-1]["note"] == "consumer returned; no ASGI rule broken"  # never a 1011
        async_records = second.records_of(async_id)
        assert any(r["kind"] == "note" and r["note"].startswith("group_send failed") for r in async_records)
    finally:
        for server in servers:
            server.stop()
        redis.stop()
