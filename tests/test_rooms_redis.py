"""Rooms across processes: two daphne servers sharing a real redis-server through channels_redis."""

import asyncio

import pytest
from websockets.asyncio.client import connect

from tests.conftest import WIRE_ENV, DaphneServer


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
