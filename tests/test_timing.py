"""Where each event's time went: its wait before the handler, the handler's own time, the thread.

The wire test reproduces the cross-stall: since channels 4.2,
``AsyncConsumer.dispatch`` awaits ``aclose_old_connections()``, a hop to the
one sync thread, so while a SyncConsumer handler sleeps every AsyncConsumer's
events wait too, and the trace says whose handler they waited for.
Nothing here asserts how long anything took beyond what a sleep guarantees.
"""

import asyncio
import time

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from websockets.asyncio.client import connect

from explorer.asgi import application
from explorer.trace.timing import Hold, HoldLedger, Steps
from tests.conftest import ARRIVED, CLOCKS, daphne_serving, moment, untimed


def communicator(endpoint):
    return WebsocketCommunicator(application, f"/ws/{endpoint}/")


def trace_settings(**options):
    return override_settings(EXPLORER_TRACE={"MODE": "compact", **options})


async def test_each_event_has_its_wait_thread_and_handler_time(endpoint, trace):
    client = communicator(endpoint)
    await client.connect()
    await client.send_to(text_data="/sleep 0.2")
    assert await client.receive_from() == "slept 0.2 s"
    await client.disconnect()
    records = trace.records()
    ins = [r for r in records if r["kind"] == "in"]
    dones = [r for r in records if r["kind"] == "done"]
    assert [r["event"]["type"] for r in ins] == [r["event"]["type"] for r in dones]
    assert all(r["wait"] >= 0 and r["thread"] for r in ins)
    [sleep] = [d for d, i in zip(dones, ins, strict=True) if i["event"].get("text") == "/sleep 0.2"]
    assert sleep["handler"] >= 0.2  # a sleep lasts at least that long
    assert len({r["thread"] for r in ins + dones}) == 1
    # The console shows the same figures on the event's lines.
    text = trace.text()
    assert " wait " in text and " handler " in text


async def arrivals(endpoint, trace, slow_wait_ms):
    """The ``in`` records of a connection opened and closed with this threshold."""
    with trace_settings(SLOW_WAIT_MS=slow_wait_ms):
        client = communicator(endpoint)
        await client.connect()
        await client.disconnect()
    return [r for r in trace.records() if r["kind"] == "in"]


async def test_a_wait_over_the_threshold_is_flagged(endpoint, trace):
    records = await arrivals(endpoint, trace, slow_wait_ms=0)
    assert records and all(r["slow"] for r in records)
    assert all(r["notes"][0].startswith("waited ") for r in records)


async def test_a_wait_under_the_threshold_is_not_flagged(endpoint, trace):
    records = await arrivals(endpoint, trace, slow_wait_ms=60_000)
    assert records and not any(r.get("slow") for r in records)
    assert not any(r.get("notes") for r in records if r["event"]["type"] != "websocket.disconnect")


async def test_a_wait_is_blamed_on_the_sync_handler_that_held_the_thread(endpoint, trace):
    """An sc handler sleeps; an event for `endpoint` sent meanwhile waits for it, whichever kind it is."""
    sleeper, waiter = communicator("sc"), communicator(endpoint)
    await sleeper.connect()
    await waiter.connect()
    await sleeper.send_to(text_data="/sleep 0.5")
    sleeper_id = (await trace.handler_started("/sleep 0.5"))["connection"]
    sent = time.time()
    await waiter.send_to(text_data="hello")
    assert await waiter.receive_from(timeout=5) == "hello"
    assert await sleeper.receive_from(timeout=5) == "slept 0.5 s"
    [hello] = [r for r in trace.records() if r["kind"] == "in" and r["event"].get("text") == "hello"]
    [slept] = [r for r in trace.records(sleeper_id) if r["kind"] == "done" and r["handler"] >= 0.5]
    assert hello["slow"]
    # It arrived as it was sent, and its handler could not start before the sleep ended: its wait is
    # the time between (on the wall clock, each connection's anchored on it as it opened: give or take).
    assert sent - CLOCKS <= moment(hello) <= sent + ARRIVED
    assert moment(hello) + hello["wait"] >= moment(slept) - CLOCKS
    assert f"held by {sleeper_id} (websocket.receive '/sleep 0.5'" in hello["notes"][0]
    mechanism = "aclose_old_connections()" if endpoint == "ac" else "take turns on that one thread"
    assert mechanism in hello["notes"][0]
    await sleeper.disconnect()
    await waiter.disconnect()


async def test_an_async_sleep_holds_nothing(trace):
    sleeper, other = communicator("ac"), communicator("ac")
    await sleeper.connect()
    await other.connect()
    await sleeper.send_to(text_data="/sleep 0.5")
    sleeper_id = (await trace.handler_started("/sleep 0.5"))["connection"]
    await other.send_to(text_data="hello")
    assert await other.receive_from(timeout=5) == "hello"
    [hello] = [r for r in trace.records() if r["kind"] == "in" and r["event"].get("text") == "hello"]
    # Not held up by the sleeper (a busy machine may slow its hop, and the trace then says by whom).
    assert sleeper_id not in (hello.get("held_by") or []) and hello["wait"] < 0.3
    assert not any(sleeper_id in note for note in hello.get("notes", []))
    await sleeper.receive_from(timeout=5)
    await sleeper.disconnect()
    await other.disconnect()


@pytest.fixture(scope="module")
def stall_server(tmp_path_factory):
    with daphne_serving(tmp_path_factory, "tests.stall_app:application") as daphne:
        yield daphne


async def test_on_the_wire_a_sleeping_sync_consumer_stalls_async_ones_but_not_raw_asgi(stall_server):
    """The cross-stall, end to end: who answers first while /ws/sc/ sleeps 1 s."""
    answered = []

    async def echo(ws, name):
        await ws.send(name)
        assert await ws.recv() == name
        answered.append(name)

    async def reply(ws, name, expected):
        assert await ws.recv() == expected
        answered.append(name)

    async with (
        connect(stall_server.url("sc")) as sync_ws,
        connect(stall_server.url("ac")) as async_ws,
        connect(f"ws://127.0.0.1:{stall_server.port}/ws/raw/") as raw_ws,
    ):
        await sync_ws.send("/sleep 1")
        stall_server.wait_for(r"sc#\d+\s+→ in .*'/sleep 1'")  # its handler has started
        await asyncio.gather(
            reply(sync_ws, "sync", "slept 1 s"), echo(async_ws, "async"), echo(raw_ws, "raw")
        )
        async_connection = stall_server.connection_of(async_ws.local_address[1])
        sync_connection = stall_server.connection_of(sync_ws.local_address[1])
    # The raw app answered while the sync thread was held; the async consumer only once it was free.
    assert answered == ["raw", "sync", "async"]
    records = stall_server.records_of(async_connection)
    [echoed] = [r for r in records if r["kind"] == "in" and r["event"].get("text") == "async"]
    assert echoed["slow"]
    blame = echoed["notes"][0]
    assert f"for the sync thread, held by {sync_connection} (websocket.receive '/sleep 1'" in blame
    assert "AsyncConsumer.dispatch awaits aclose_old_connections()" in blame


@pytest.mark.parametrize("late", ["sc", "ac"])
async def test_an_async_handler_that_blocks_the_event_loop_is_named_with_who_arrived_late(stall_server, late):
    """/block on /ws/ac/ holds the loop's thread: the handler says so, and what arrived meanwhile, why."""
    async with connect(stall_server.url("ac")) as blocker, connect(stall_server.url(late)) as other:
        await blocker.send("/block 1")
        await asyncio.sleep(0.2)  # the loop is held now: this message waits in the socket
        await other.send("late")
        assert await other.recv() == "late"
        assert await blocker.recv() == "blocked 1 s"
        blocking = stall_server.connection_of(blocker.local_address[1])
        waiting = stall_server.connection_of(other.local_address[1])
    [done] = [
        r
        for r in stall_server.records_of(blocking)
        if r["kind"] == "done" and r["event"]["type"] == "websocket.receive" and r["handler"] >= 1
    ]
    [held] = done["notes"]
    assert held.startswith("held the event loop's thread for 1.0")
    assert "Every connection on this loop waited" in held
    [arrived] = [
        r for r in stall_server.records_of(waiting) if r["kind"] == "in" and r["event"].get("text") == "late"
    ]
    assert any(
        note.startswith(
            f"arrived as {blocking}'s handler (websocket.receive '/block 1') let go of the event loop"
        )
        for note in arrived["notes"]
    ), arrived


async def test_an_async_sleep_holds_nothing_and_says_nothing(stall_server):
    async with connect(stall_server.url("ac")) as sleeper:
        await sleeper.send("/sleep 0.5")
        assert await sleeper.recv() == "slept 0.5 s"
        connection = stall_server.connection_of(sleeper.local_address[1])
    [done] = [r for r in stall_server.records_of(connection) if r["kind"] == "done" and r["handler"] >= 0.5]
    # 0.5 s in the handler, none of it holding the loop: a step a busy machine slowed (a collection)
    # may be noted as a hold, never the sleep.
    assert untimed(done.get("notes", [])) == []
    assert done.get("held_loop") is None or done["held_loop"][1] < 0.25


async def test_a_hop_asked_for_in_the_step_under_way_counts_from_that_step():
    """A query can start on the sync thread before the step that asked for it has yielded: its hop
    was asked for within that step, not when the step before it ended (a sleep earlier)."""
    seen = []

    async def handler():
        await asyncio.sleep(0.2)
        seen.append((time.perf_counter(), steps.asked()))  # as a query starting now would see it

    steps = Steps(handler())
    await steps
    [(now, asked)] = seen
    assert now - asked < 0.1  # not the 0.2 s the sleep took


def test_only_holds_of_the_same_thread_are_blamed():
    holds = HoldLedger()
    holds.record(Hold("sc#1", ("websocket.receive", "/sleep 1"), "ThreadPoolExecutor-0_0", 10.0, 11.0))
    holds.record(Hold("ac#2", ("websocket.receive", "x"), "asyncio_0", 10.0, 11.0))
    assert [h.connection for h in holds.holders(10.5, 10.6, "late#3", thread="asyncio_0")] == ["ac#2"]
    assert [h.connection for h in holds.holders(10.5, 10.6, "late#3")] == ["sc#1", "ac#2"]


async def test_a_blamed_handlers_event_has_its_credentials_hidden(endpoint, trace):
    """A wait's note names what each handler that held the thread was handling, the start of its text: a
    credential in it is hidden there as on the holder's own lines (it was shown as it came)."""
    sleeper, holder, waiter = communicator("sc"), communicator("sc"), communicator(endpoint)
    for client in (sleeper, holder, waiter):
        await client.connect()
    await sleeper.send_to(text_data="/sleep 0.5")
    await trace.handler_started("/sleep 0.5")  # the others queue behind it
    await holder.send_to(text_data='{"password": "hunter2", "x": 1}')
    await asyncio.sleep(0.05)
    await waiter.send_to(text_data="hello")
    assert await waiter.receive_from(timeout=5) == "hello"
    assert await holder.receive_from(timeout=5) == '{"password": "hunter2", "x": 1}'
    holder_id = next(r["connection"] for r in trace.records() if '"x": 1' in str(r["event"].get("text")))
    [hello] = [r for r in trace.records() if r["kind"] == "in" and r["event"].get("text") == "hello"]
    assert f'{holder_id} (websocket.receive \'{{"password": "<redacted>", "x": 1}}\'' in hello["notes"][0]
    assert "hunter2" not in trace.text()
    for client in (sleeper, holder, waiter):
        await client.disconnect()
