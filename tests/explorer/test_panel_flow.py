"""The page panel's flow to one page, with no browser: what it sends is held to what the page has read.

Apart from ``tests/test_panel.py``, whose browser (Playwright's sync API) keeps an event loop running in
the test's thread, where an async test cannot run.
"""

import asyncio
import json
import logging

import pytest
from channels.testing import WebsocketCommunicator

from explorer.asgi import application
from explorer.trace import panel
from explorer.trace.config import TraceConfig
from explorer.trace.entry import TraceEntry, entry_of, values_of
from explorer.trace.renderer import as_log_record

COMPACT = TraceConfig(mode="compact")


@pytest.fixture
def fresh_hub(monkeypatch):
    """The panel's hub of a process that no page has watched yet."""
    hub = panel.Hub()
    monkeypatch.setattr(panel, "hub", hub)
    return hub


def trace_flushed():
    """Every record traced so far handed to the trace's sinks, the panel among them."""
    for handler in logging.getLogger("explorer.trace").handlers:
        handler.flush()


async def echoed(endpoint, text):
    """``text`` echoed once on ``endpoint``, the connection closed, and its records handed on."""
    client = WebsocketCommunicator(application, f"/ws/{endpoint}/")
    assert (await client.connect())[0]
    await client.send_to(text_data=text)
    assert await client.receive_from() == text
    await client.disconnect()
    trace_flushed()


async def opened_page():
    page = WebsocketCommunicator(panel.TracePanel(), panel.PATH, headers=[(b"origin", b"http://x")])
    assert (await page.connect())[0]
    assert json.loads(await page.receive_from())["type"] == "hello"
    return page


async def records_until(page, text):
    """The records of each batch, each acknowledged, until one holds the message ``text`` echoed."""
    records = []
    while True:
        batch = json.loads(await page.receive_from(timeout=5))
        await page.send_to(text_data=json.dumps({"ack": batch["batch"]}))
        records += batch["records"]
        if any(text in json.dumps(record) for record in batch["records"]):
            return records


async def test_the_first_page_a_process_shows_gets_the_records_from_before_it(fresh_hub, endpoint):
    """A page opened after a connection's echo shows that echo: its recent records, though no page had
    watched before it (the panel once kept them only from the first page on)."""
    await echoed(endpoint, "before any page")
    page = await opened_page()
    trace_flushed()  # the listener's next batch gives the page the records from before it
    records = await records_until(page, "before any page")
    assert [record["seq"] for record in records] == sorted({record["seq"] for record in records})
    assert {"scope", "in", "out", "exit"} <= {record["kind"] for record in records}
    await page.disconnect()


async def test_records_are_made_into_lines_only_while_a_page_watches(fresh_hub, endpoint, monkeypatch):
    """Making a record a page's line costs the listener's thread about 30 µs, beside the event loop:
    once the last page has gone, the trace's records are kept as they were queued, not made into lines
    (the panel once made every record into JSON for good once a page had watched)."""
    made = []  # (connection, kind) of each record made into a line

    def line(number, item, line=fresh_hub.line):
        entry = entry_of(item) if type(item) is tuple else item.trace
        made.append((entry.connection, entry.kind))
        return line(number, item)

    monkeypatch.setattr(fresh_hub, "line", line)
    page = await opened_page()
    await echoed(endpoint, "while the page watches")
    await records_until(page, "while the page watches")
    await page.disconnect()
    assert made
    made.clear()
    await echoed(endpoint, "after the page went")
    # Only the scope, which may hold the application's objects: the recent records keep none alive.
    assert [kind for _, kind in made] == ["scope"]
    assert all(panel.plain(item) or type(item) is str for _, item, _ in fresh_hub.recent)
    made.clear()
    later = await opened_page()  # and a page that opens again gets them
    trace_flushed()
    await records_until(later, "after the page went")
    await later.disconnect()
    # Each line made once, and kept: only the second echo's records not made yet (all but its scope).
    assert made and "scope" not in [kind for _, kind in made]
    assert len({connection for connection, _ in made}) == 1


async def test_a_page_that_opens_or_leaves_never_waits_for_lines_to_be_made(fresh_hub, endpoint, monkeypatch):
    """Pages open and leave on the event loop, and the loop must not wait while the listener makes lines
    (some 30 µs a record, 500 recent records for a page that opens): the pages' lock is never held then
    (it once was, for a whole batch)."""
    held_while_made = []

    def line(number, item, line=fresh_hub.line):
        held_while_made.append(fresh_hub.lock.locked())
        return line(number, item)

    monkeypatch.setattr(fresh_hub, "line", line)
    await echoed(endpoint, "before the page")
    page = await opened_page()
    trace_flushed()
    await records_until(page, "before the page")
    await echoed(endpoint, "while it watches")
    await records_until(page, "while it watches")
    await page.disconnect()
    assert held_while_made and not any(held_while_made)


async def test_no_line_is_made_for_a_page_that_has_no_room_for_it(fresh_hub, endpoint, monkeypatch):
    """A page that stops reading (a tab in the background, a script that never acknowledges) soon has its
    buffer full, and loses every record after: making those lines anyway cost the listener's thread some
    30 µs a record, beside the event loop, for as long as the page stayed open. While no page has room,
    records are kept as queued, counted as lost to each page, in their place; a page that reads again is
    told how many, then gets the records after them."""
    monkeypatch.setattr(panel, "BUFFER_RECORDS", 3)
    monkeypatch.setattr(panel, "WINDOW", 1)
    made = []

    def line(number, item, line=fresh_hub.line):
        made.append(item[1] if type(item) is tuple else "a logging record")
        return line(number, item)

    monkeypatch.setattr(fresh_hub, "line", line)
    page = await opened_page()
    await echoed(endpoint, "fills its buffer")
    first = json.loads(await page.receive_from(timeout=5))  # its window: then it stops acknowledging
    await echoed(endpoint, "fills its buffer")  # whatever room the first batch left, now gone
    [subscriber] = fresh_hub.subscribers
    assert subscriber.full()
    made.clear()
    for _ in range(3):
        await echoed(endpoint, "while it stalls")
    # Only the scopes, made at once as ever: they may hold the application's objects.
    assert made and set(made) == {"scope"}
    await page.send_to(text_data=json.dumps({"ack": first["batch"]}))  # it reads again
    batches = []
    while not any(batch["dropped"] for batch in batches):
        batches.append(json.loads(await page.receive_from(timeout=5)))
        await page.send_to(text_data=json.dumps({"ack": batches[-1]["batch"]}))
    lost = batches[-1]["dropped"]
    assert lost >= 3 * 4  # at least each stalled echo's receive, send, handler done and exit
    monkeypatch.setattr(panel, "BUFFER_RECORDS", 1000)  # room for a whole echo's records
    await echoed(endpoint, "after it reads again")
    records = await records_until(page, "after it reads again")
    seqs = [record["seq"] for each in batches for record in each["records"]] + [r["seq"] for r in records]
    assert seqs == sorted(seqs)
    await page.disconnect()


def received(*texts):
    """Entries' values as the consumer's path queues them: plain, kept unmade while no page has room."""
    return [
        values_of(TraceEntry("ac#1", "in", 0.5, {"type": "websocket.receive", "text": text}, COMPACT))
        for text in texts
    ]


def texts(lines):
    return [json.loads(line)["event"]["text"] for line in lines]


async def test_a_full_page_is_told_exactly_how_many_records_it_missed_and_where(fresh_hub, monkeypatch):
    monkeypatch.setattr(panel, "BUFFER_RECORDS", 3)
    page = fresh_hub.subscribe(asyncio.get_running_loop(), asyncio.Event())
    fresh_hub.keep(received("1", "2", "3", "4"), [10] * 4)  # it opened: made, and the fourth refused
    assert page.full()
    fresh_hub.keep(received("5", "6"), [10] * 2)  # no room: kept as queued, counted
    assert [type(item) for _, item, _ in fresh_hub.recent][-2:] == [tuple, tuple]
    lines, dropped = page.take()
    assert (texts(lines), dropped) == (["1", "2", "3"], 0)
    assert page.take() == ([], 3)  # 4, 5 and 6, told after the lines before them
    fresh_hub.keep(received("7"), [10])
    lines, dropped = page.take()
    assert (texts(lines), dropped) == (["7"], 0)


async def test_a_page_full_by_its_bytes_has_no_lines_made_for_it(fresh_hub, monkeypatch):
    """A page's buffer is bounded in bytes too: a page stopped there, just under the bound, is full (it was
    only full at the bound exactly, and every record was made into a line that it then refused)."""
    made = []

    def line(number, item, line=fresh_hub.line):
        made.append(number)
        return line(number, item)

    monkeypatch.setattr(fresh_hub, "line", line)
    page = fresh_hub.subscribe(asyncio.get_running_loop(), asyncio.Event())
    fresh_hub.keep(received("1"), [10])
    monkeypatch.setattr(panel, "BUFFER_BYTES", int(len(page.lines[0]) * 2.5))
    fresh_hub.keep(received("2", "3"), [10] * 2)  # the third line does not fit
    assert len(page.lines) == 2 and page.full()
    made.clear()
    fresh_hub.keep(received("4", "5"), [10] * 2)
    assert made == []
    assert page.take()[0] and page.take() == ([], 3)
    assert not page.full()  # it has taken them, and been told: room again


async def test_a_page_is_woken_once_the_listeners_whole_batch_is_offered(fresh_hub, endpoint, monkeypatch):
    """A page's task takes what waits as soon as it is woken, and waking it hands its loop the GIL (the
    loop's self-pipe is written). Woken at the first line, it took the listener's batch a line at a time,
    a message and an acknowledgement each: a page opening on a busy machine got its recent records one
    per batch. It is woken once, when the batch is offered whole."""
    taken = []

    def take_at_once(page):
        lines, dropped = page.take()
        taken.append((len(lines), dropped))

    monkeypatch.setattr(panel.Subscriber, "wake_page", take_at_once)
    await echoed(endpoint, "before any page")
    page = fresh_hub.subscribe(asyncio.get_running_loop(), asyncio.Event())
    fresh_hub.keep([], [])  # the listener's next batch: the records from before it
    assert taken == [(len(fresh_hub.recent), 0)] and len(fresh_hub.recent) >= 7
    fresh_hub.keep(received("1", "2", "3"), [10] * 3)
    assert taken[1:] == [(3, 0)]
    page.missed(2)  # counted, not said: the listener's batch is not over (and the page has refused one)
    fresh_hub.keep(received("4"), [10])  # no room: counted too
    assert taken[2:] == [(0, 3)] and page.take() == ([], 0)  # said once, when the batch was over


async def test_a_page_with_nothing_waiting_is_woken_to_be_told_what_it_missed():
    """Records lost to a page as the listener found it full, when it has since taken every line it had:
    nothing else would wake it, and on a server gone quiet it would never hear of them."""
    wake = asyncio.Event()
    page = panel.Subscriber(asyncio.get_running_loop(), wake)
    page.missed(5)
    page.signal()  # the listener's batch is offered
    await asyncio.wait_for(wake.wait(), 5)
    assert page.take() == ([], 5)


async def test_a_record_is_the_same_line_as_queued_and_as_a_logging_record(fresh_hub, endpoint, monkeypatch):
    """The panel makes a queued entry's line with no logging record on the way (a quarter of a line's
    cost): the line is the one its logging record made, for every record of a connection, its scope
    (with the application's user and session) among them."""
    from explorer.trace.connection import logging_record
    from explorer.trace.recording import record_of

    kept = []

    def keep(items, weights, keep=fresh_hub.keep):
        kept.extend(items)
        return keep(items, weights)

    monkeypatch.setattr(fresh_hub, "keep", keep)
    await echoed(endpoint, "one line each")
    queued = [item for item in kept if type(item) is tuple]
    assert {"scope", "in", "out", "done", "exit"} <= {item[1] for item in queued}
    for number, item in enumerate(queued):
        line = fresh_hub.line(number, item)
        assert line is not None
        through_logging = {**record_of(logging_record(item)), "seq": number}
        assert json.loads(line) == through_logging
        assert line == json.dumps(through_logging, ensure_ascii=True)


def test_the_recent_records_are_bounded_in_count_and_in_weight(fresh_hub):
    """What the hub keeps for a page that opens is the last RECENT_RECORDS records, and no more than
    RECENT_BYTES of what they hold, as the queue weighs them."""
    message = as_log_record("message", "x", 0)
    fresh_hub.keep([message] * (panel.RECENT_RECORDS + 100), [1] * (panel.RECENT_RECORDS + 100))
    assert len(fresh_hub.recent) == panel.RECENT_RECORDS
    assert fresh_hub.recent[-1][0] == panel.RECENT_RECORDS + 100  # the last ones, by their numbers
    tenth = panel.RECENT_BYTES // 10
    fresh_hub.keep([message] * 20, [tenth] * 20)
    assert len(fresh_hub.recent) == 10 and fresh_hub.recent_weight <= panel.RECENT_BYTES


async def test_a_page_that_acknowledges_what_it_never_read_is_sent_no_more_than_the_server_holds(monkeypatch):
    """An acknowledgement is the page's word; what the server still holds for it is the server's (where it
    shows it, ``explorer.unsent``). A client that acknowledges every batch and reads none is sent nothing
    more once the server holds a buffer's worth for it, and is sent the rest once it reads."""

    unsent = [0]  # bytes the server holds for the page, as the probe reads them
    monkeypatch.setattr(panel, "probe", lambda send: lambda: unsent[0])
    page = WebsocketCommunicator(panel.TracePanel(), panel.PATH, headers=[(b"origin", b"http://x")])
    assert (await page.connect())[0]
    assert json.loads(await page.receive_from())["type"] == "hello"

    def publish(text):
        panel.hub.keep([as_log_record("message", text, 0)], [len(text)])

    async def until(text):
        """Batches, each acknowledged, until one holds the message ``text`` (the recent records the page
        gets as it opens come first: earlier tests' records, in a whole run)."""
        while True:
            batch = json.loads(await page.receive_from(timeout=5))
            await page.send_to(text_data=json.dumps({"ack": batch["batch"]}))
            if any(record.get("text") == text for record in batch["records"]):
                return batch

    publish("first")
    await until("first")
    await page.send_to(text_data=json.dumps({"ack": 10**9}))  # every batch it may ever be sent
    unsent[0] = panel.BUFFER_BYTES + 1  # yet the server still holds them all: it has read none
    publish("second")
    assert await page.receive_nothing(timeout=3 * panel.UNREAD_PAUSE)
    unsent[0] = 0  # it reads
    assert (await until("second"))["dropped"] == 0
    await page.disconnect()
