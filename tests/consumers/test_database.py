"""The database on both endpoints, through WebsocketCommunicator: /say keeps, /history reads, /query waits
on the database, and every statement is in the trace under its handler, on the thread it ran on."""

import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection

from explorer.asgi import application
from explorer.models import MAX_STORED, RoomMessage
from explorer.trace import queries

pytestmark = pytest.mark.usefixtures("database")


def communicator(endpoint):
    return WebsocketCommunicator(application, f"/ws/{endpoint}/")


async def connected(endpoint):
    client = communicator(endpoint)
    assert await client.connect() == (True, None)
    return client


async def command(client, text):
    await client.send_to(text_data=text)
    return await client.receive_from()


async def test_history_returns_what_say_stored_from_either_endpoint(endpoint):
    speaker, reader = await connected("sc"), await connected(endpoint)
    assert await command(speaker, "/join lobby") == "joined lobby"
    for text in ("one", "two", "three"):
        await command(speaker, f"/say lobby {text}")
    name = (await command(speaker, "/say lobby four")).split(":")[0].removeprefix("[lobby] ")
    assert await command(reader, "/history lobby 2") == (
        f"2 messages in lobby, oldest first:\n[lobby] {name}: three\n[lobby] {name}: four"
    )
    assert await command(reader, "/history elsewhere") == "no messages in elsewhere yet"
    await speaker.disconnect()
    await reader.disconnect()


async def test_the_oldest_messages_go_once_the_table_holds_its_budget(endpoint, monkeypatch):
    monkeypatch.setattr("explorer.models.MAX_STORED", 3)
    client = await connected(endpoint)
    await command(client, "/join lobby")
    for number in range(5):
        await command(client, f"/say lobby m{number}")
    texts = await sync_to_async(lambda: list(RoomMessage.objects.values_list("text", flat=True)))()
    assert texts == ["m2", "m3", "m4"]
    assert MAX_STORED == 10_000
    await client.disconnect()


async def test_query_runs_on_the_sync_thread_and_is_traced_under_its_handler(endpoint, trace):
    client = await connected(endpoint)
    main = threading.current_thread().name
    assert await command(client, "/query 0.2") == "queried 0.2 s"
    await client.disconnect()
    [query] = [r for r in trace.records() if r["kind"] == "query"]
    assert query["event"]["sql"] == "SELECT pg_sleep(%s)"  # placeholders, never the parameters
    assert query["took"] >= 0.2
    assert query["thread"] != main and query["thread"].startswith(
        "ThreadPoolExecutor"
    )  # the sync thread, from ac too
    [done] = [r for r in trace.records() if r["kind"] == "done" and r["seconds"] >= query["seconds"]][:1]
    assert done["queries"][0] == 1 and done["queries"][1] >= 0.2
    assert done["on_loop"] is (endpoint == "ac")
    assert "⛁ query" in trace.text() and "1 query" in trace.text()


async def test_the_trace_says_whether_a_query_opened_the_connection_or_reused_it(endpoint, trace):
    client = await connected(endpoint)
    await command(client, "/join lobby")
    await command(client, "/say lobby hi")  # an INSERT, then a DELETE in its own transaction
    await command(client, "/history lobby")
    await client.disconnect()
    states = [r["event"]["connection"] for r in trace.records() if r["kind"] == "query"]
    # The last test's connection on this thread was closed (by the ``database`` fixture).
    assert states[0].startswith("opened: this thread's last (opened ")
    assert "was closed, as channels' close_old_connections() does" in states[0]
    assert "CONN_MAX_AGE=0 s" in states[0]
    assert all(state.startswith("reused, opened ") for state in states[1:])


def rename_table(old, new):
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")


async def test_a_failing_database_gets_an_error_reply_a_note_and_the_connection_stays(endpoint, trace):
    client = await connected(endpoint)
    await command(client, "/join lobby")
    await sync_to_async(rename_table)("explorer_roommessage", "gone")  # as if the database had lost it
    try:
        assert await command(client, "/history lobby") == (
            "error: history failed (OperationalError); the database may be down"
        )
        await client.send_to(text_data="/say lobby still here")
        replies = {await client.receive_from(), await client.receive_from()}
    finally:
        await sync_to_async(rename_table)("gone", "explorer_roommessage")
    name = trace.records()[0]["connection"]
    # Said to the room all the same (the layer works); not kept, and the client is told.
    assert replies == {
        f"[lobby] {name}: still here",
        "error: store failed (OperationalError); the database may be down",
    }
    assert await command(client, "echo") == "echo"
    await client.disconnect()
    notes = [r["note"] for r in trace.records() if r["kind"] == "note"]
    assert "history failed: OperationalError: no such table: explorer_roommessage" in notes
    failed = [r for r in trace.records() if r["kind"] == "query" and "error" in r["event"]]
    # The SELECT had a parameter (the room): its message is the trace's to keep back, not the note's.
    assert failed[0]["event"]["error"] == (
        "OperationalError [SQLITE_ERROR] (its message is not shown: it may quote the statement's parameters)"
    )


class QuotingError(Exception):
    """What PostgreSQL says of a bad value: it quotes it."""


def test_a_failed_statements_message_is_shown_only_when_it_had_no_parameters():
    from django.db import DataError

    error = DataError('invalid input syntax for type integer: "not-a-number-SECRET"')
    error.__cause__ = QuotingError()
    error.__cause__.sqlstate = "22P02"
    with_parameters = queries.failure(error, bound=True)
    assert "SECRET" not in with_parameters
    assert with_parameters == (
        "DataError [22P02] (its message is not shown: it may quote the statement's parameters)"
    )
    assert queries.failure(error, bound=False) == (
        'DataError [22P02]: invalid input syntax for type integer: "not-a-number-SECRET"'
    )
