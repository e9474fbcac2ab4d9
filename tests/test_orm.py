"""The database on the wire, under a real daphne: who waits for whose query.

A SyncConsumer's query holds the one sync thread; so does an AsyncConsumer's,
since Django's async ORM and ``database_sync_to_async`` run it there. Every
AsyncConsumer's next event waits for that thread (its dispatch hops onto it
first), and so does every async query. The trace names the query.
"""

import asyncio

import pytest
from websockets.asyncio.client import connect

from tests.conftest import WIRE_ENV, DaphneServer

HOLDER = {"sc": "/sleep 1", "ac": "/query 1"}  # what holds the sync thread for 1 s from each endpoint


@pytest.fixture(scope="module")
def stall_server(tmp_path_factory):
    recording = tmp_path_factory.mktemp("daphne-orm") / "trace.jsonl"
    daphne = DaphneServer(recording, "tests.stall_app:application", **WIRE_ENV)
    yield daphne
    daphne.stop()


async def test_history_returns_what_say_stored(stall_server, endpoint):
    async with connect(stall_server.url("sc")) as speaker, connect(stall_server.url(endpoint)) as reader:
        await speaker.send(f"/join kept-{endpoint}")
        assert await speaker.recv() == f"joined kept-{endpoint}"
        for text in ("first", "second"):
            await speaker.send(f"/say kept-{endpoint} {text}")
            said = await speaker.recv()
        name = said.split("] ", 1)[1].split(":")[0]
        await reader.send(f"/history kept-{endpoint}")
        assert await reader.recv() == (
            f"2 messages in kept-{endpoint}, oldest first:\n"
            f"[kept-{endpoint}] {name}: first\n[kept-{endpoint}] {name}: second"
        )
        await reader.send("/history kept-nothing")
        assert await reader.recv() == "no messages in kept-nothing yet"


async def test_a_query_on_either_endpoint_delays_an_ac_echo_and_history_and_the_trace_names_it(
    stall_server, endpoint
):
    async with (
        connect(stall_server.url(endpoint)) as querier,
        connect(stall_server.url("ac")) as echoer,
        connect(stall_server.url("ac")) as reader,
    ):
        mark = len(stall_server.lines)  # the server is shared: this test's line, not an earlier one's
        await querier.send("/query 1")
        stall_server.wait_for(r"→ in .*'/query 1'", start=mark)
        await asyncio.sleep(0.2)  # the query holds the sync thread now
        await echoer.send("hello")
        await reader.send(f"/history waited-{endpoint}")
        assert await echoer.recv() == "hello"
        assert await reader.recv() == f"no messages in waited-{endpoint} yet"
        assert await querier.recv() == "queried 1 s"
        holder = stall_server.connection_of(querier.local_address[1])
        waiting = [stall_server.connection_of(ws.local_address[1]) for ws in (echoer, reader)]
    for connection, text in zip(waiting, ("hello", f"/history waited-{endpoint}"), strict=True):
        records = stall_server.records_of(connection)
        [arrived] = [r for r in records if r["kind"] == "in" and r["event"].get("text") == text]
        assert arrived.get("slow") and holder in arrived["held_by"], arrived
        assert f"held by {holder}'s query SELECT pg_sleep(%s) (1.0" in arrived["notes"][0], arrived
    [query] = [r for r in stall_server.records_of(holder) if r["kind"] == "query"]
    assert query["event"]["sql"] == "SELECT pg_sleep(%s)" and query["took"] >= 1
    assert query["thread"].startswith("ThreadPoolExecutor")  # the sync thread, from ac too


async def test_an_async_query_waits_behind_whoever_holds_the_sync_thread(stall_server, endpoint):
    """A user's AsyncConsumer sleeps 0.3 s, then queries with the async ORM: by then ``endpoint`` holds
    the sync thread, so the query itself waits, and its line says for whom."""
    late_url = f"ws://127.0.0.1:{stall_server.port}/ws/late-query/"
    async with connect(late_url) as late, connect(stall_server.url(endpoint)) as holder_ws:
        await late.send("0.3")
        await asyncio.sleep(0.1)
        await holder_ws.send(HOLDER[endpoint])
        assert (await late.recv()).endswith(" messages")
        await holder_ws.recv()
        querying = stall_server.connection_of(late.local_address[1])
        holder = stall_server.connection_of(holder_ws.local_address[1])
    [query] = [r for r in stall_server.records_of(querying) if r["kind"] == "query"]
    assert query["event"]["sql"].startswith('SELECT COUNT(*) AS "__count" FROM "explorer_roommessage"')
    assert query["slow"] and query["wait"] >= 0.5 and query["held_by"] == [holder]
    [blame] = query["notes"]
    held = {
        "sc": f"{holder} (websocket.receive '/sleep 1'",
        "ac": f"{holder}'s query SELECT pg_sleep(%s) (1.0",
    }
    assert blame.startswith("waited ") and f"for the sync thread, held by {held[endpoint]}" in blame
    assert blame.endswith("Django's async ORM and database_sync_to_async run every query on that one thread")
    [done] = [r for r in stall_server.records_of(querying) if r["kind"] == "done" and r.get("queries")]
    assert done["on_loop"] and done["queries"][0] == 1


SHORT_HOLDER = {"sc": "/sleep 0.3", "ac": "/query 0.3"}


async def test_an_async_query_made_once_the_thread_is_free_again_is_not_blamed(stall_server, endpoint):
    """The user's consumer sleeps 0.6 s while ``endpoint`` holds the sync thread for 0.3 s: by the time
    it queries, nobody holds the thread, and its line blames nobody."""
    late_url = f"ws://127.0.0.1:{stall_server.port}/ws/late-query/"
    async with connect(late_url) as late, connect(stall_server.url(endpoint)) as holder_ws:
        await late.send("0.6")
        await holder_ws.send(SHORT_HOLDER[endpoint])
        await holder_ws.recv()
        assert (await late.recv()).endswith(" messages")
        querying = stall_server.connection_of(late.local_address[1])
    [query] = [r for r in stall_server.records_of(querying) if r["kind"] == "query"]
    assert not query.get("slow") and not query.get("notes") and not query.get("held_by"), query


async def test_an_async_query_on_a_thread_of_its_own_waits_for_nobody(stall_server, endpoint):
    """``sync_to_async(thread_sensitive=False)`` runs the query beside the sync thread, which ``endpoint``
    holds meanwhile: the query does not wait for it, and its line says no such thing."""
    late_url = f"ws://127.0.0.1:{stall_server.port}/ws/late-query/"
    async with connect(late_url) as late, connect(stall_server.url(endpoint)) as holder_ws:
        await late.send("0.3 off")
        await asyncio.sleep(0.1)
        await holder_ws.send(HOLDER[endpoint])
        assert (await late.recv()).endswith(" messages")  # while the thread is still held
        await holder_ws.recv()
        querying = stall_server.connection_of(late.local_address[1])
    [query] = [r for r in stall_server.records_of(querying) if r["kind"] == "query"]
    assert not query["thread"].startswith("ThreadPoolExecutor-0")  # not the sync thread
    assert not query.get("slow") and not query.get("notes") and not query.get("held_by"), query


async def test_query_is_bounded_like_sleep(stall_server, endpoint):
    async with connect(stall_server.url(endpoint)) as ws:
        await ws.send("/query 31")
        assert await ws.recv() == "error: /query takes SECONDS from 0 to 30, got '31'"
        await ws.send("/history no/such/room")
        assert (await ws.recv()).startswith("error: room names are ASCII letters")
        await ws.send("/history lobby 51")
        assert await ws.recv() == "error: /history N must be a whole number from 1 to 50, got '51'"
        await ws.send("still open")
        assert await ws.recv() == "still open"


@pytest.fixture(scope="module")
def databaseless_server(tmp_path_factory):
    """daphne with a database it cannot open: a file in a directory that does not exist."""
    directory = tmp_path_factory.mktemp("daphne-no-database")
    url = f"sqlite:///{directory / 'missing' / 'db.sqlite3'}"
    daphne = DaphneServer(directory / "trace.jsonl", DATABASE_URL=url, **WIRE_ENV)
    yield daphne
    daphne.stop()


async def test_a_database_that_is_down_gets_an_error_reply_and_a_note_and_the_connection_stays(
    databaseless_server, endpoint
):
    async with connect(databaseless_server.url(endpoint)) as ws:
        await ws.send("/history lobby")
        assert await ws.recv() == "error: history failed (OperationalError); the database may be down"
        await ws.send("/query 0.1")
        assert await ws.recv() == "error: query failed (OperationalError); the database may be down"
        await ws.send("still open")
        assert await ws.recv() == "still open"
        connection = databaseless_server.connection_of(ws.local_address[1])
    notes = [r["note"] for r in databaseless_server.records_of(connection) if r["kind"] == "note"]
    assert notes == [
        "history failed: OperationalError: unable to open database file",
        "query failed: OperationalError: unable to open database file",
    ]


@pytest.fixture(scope="module")
def aging_servers(tmp_path_factory):
    """daphne closing database connections around every handler (CONN_MAX_AGE=0, the default), and daphne
    keeping them a minute (60), each recording query lines whole."""
    servers = {}
    for age in ("0", "60"):
        recording = tmp_path_factory.mktemp(f"daphne-conn-max-age-{age}") / "trace.jsonl"
        env = {**WIRE_ENV, "EXPLORER_TRACE_MAX_PAYLOAD": "400", "DATABASE_CONN_MAX_AGE": age}
        servers[age] = DaphneServer(recording, **env)
    yield servers
    for server in servers.values():
        server.stop()


@pytest.mark.parametrize("age", ["0", "60"], ids=["conn-max-age-0", "conn-max-age-60"])
async def test_the_query_lines_show_close_old_connections_at_work(aging_servers, endpoint, age):
    server = aging_servers[age]
    async with connect(server.url(endpoint)) as ws:
        for _ in range(2):
            await ws.send("/history lobby")
            await ws.recv()
        connection = server.connection_of(ws.local_address[1])
    first, second = (r["event"]["connection"] for r in server.records_of(connection) if r["kind"] == "query")
    if age == "60":  # the thread's one connection, handler after handler (and test after test)
        assert second.startswith("reused, opened ")
    else:  # closed around each handler, so each opens its own
        assert first.startswith("opened")
        assert second.startswith("opened: this thread's last (opened ")
        assert second.endswith(
            "was closed, as channels' close_old_connections() does around each handler "
            "once CONN_MAX_AGE=0 s has passed"
        )
