"""The server's side in the page: the live trace panel, the timeline, the panes linked to the trace, and the
HTML export, in a real browser (Debian's chromium, driven by Playwright) against a real daphne.

The panel's bound is tested twice: with a client that never acknowledges (what the server holds for it), and
with the page paused, taking nothing (what the page then says).
"""

import io
import json
import re

import pytest
from django.core.management import call_command
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from explorer.trace import panel
from tests.conftest import read_records
from tests.test_page import SCREENSHOTS, browser, connect, send  # noqa: F401 - browser is a fixture

BURST = 5000  # records one burst makes, well over what a page may have waiting (panel.BUFFER_RECORDS)


@pytest.fixture
def windows(browser, server):  # noqa: F811 - the fixture imported above
    """``open()`` a new browser window on the page, its trace panel live; all closed at the end."""
    from playwright.sync_api import expect

    opened = []

    def open_window():
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        window = context.new_page()
        window.errors = []
        window.on("pageerror", lambda error: window.errors.append(str(error)))
        window.goto(f"http://127.0.0.1:{server.port}/")
        expect(window.locator('[data-role="trace-state"]')).to_have_text("live")
        opened.append(window)
        return window

    yield open_window
    for window in opened:
        assert window.errors == [], window.errors  # the page's scripts never failed
        window.context.close()


@pytest.fixture
def window(windows):
    return windows()


def pane(window, endpoint):
    return window.locator(f'.pane[data-endpoint="{endpoint}"]')


def traced_as(box):
    """The pane's connection's name in the trace, once the panel has told the pane."""
    from playwright.sync_api import expect

    line = box.locator('[data-role="log"] li[data-kind="server"] .body', has_text=re.compile(r"^traced as "))
    expect(line).to_have_count(1)
    return line.text_content().removeprefix("traced as ")


def rows(window, connection=None, kind=None, event_type=None):
    selector = ".records li.record"
    for name, value in (("connection", connection), ("kind", kind), ("type", event_type)):
        if value is not None:
            selector += f'[data-{name}="{value}"]'
    return window.locator(selector)


def shown_rows(window, attribute):
    return window.locator(".records li.record").evaluate_all(
        f"rows => rows.map(row => row.dataset.{attribute})"
    )


def cli_connection(server, endpoint, query=""):
    """A command-line client (no Origin) on ``endpoint``, and its name in the trace."""
    url, tag = server.url_with_tag(endpoint, query)
    client = ws_connect(url)
    return client, server.connection_tagged(tag)


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_message_shows_in_the_panel_with_its_events_in_and_out(window, endpoint):
    from playwright.sync_api import expect

    box = connect(window, endpoint)
    name = traced_as(box)
    send(box, "hello panel")
    received = rows(window, name, "in", "websocket.receive").filter(has_text="'text': 'hello panel'")
    sent = rows(window, name, "out", "websocket.send").filter(has_text="'text': 'hello panel'")
    expect(received).to_have_count(1)
    expect(sent).to_have_count(1)
    expect(rows(window, name, "done", "websocket.receive")).to_have_count(1)
    thread = "ThreadPoolExecutor" if endpoint == "sc" else "MainThread"
    expect(received).to_contain_text(thread)

    # Hovering the message in the pane's log lights up the server's records for it, in and out.
    box.locator('[data-role="log"] li[data-kind="out"]', has_text="hello panel").hover()
    linked = window.locator(".records li.linked")
    expect(linked).to_have_count(3)
    assert linked.evaluate_all("rows => rows.map(r => [r.dataset.connection, r.dataset.kind])") == [
        [name, "in"],
        [name, "out"],
        [name, "done"],
    ]
    # ... and in the timeline, the handler's bars.
    expect(window.locator(f'svg.timeline rect.handler.linked[data-connection="{name}"]')).to_have_count(2)
    # The echo the browser received points at the send that made it.
    box.locator('[data-role="log"] li[data-kind="in"]', has_text="hello panel").hover()
    expect(window.locator(".records li.linked[data-kind=out]")).to_have_count(1)
    assert window.locator(".records li.linked[data-kind=out]").get_attribute(
        "data-seq"
    ) == sent.get_attribute("data-seq")


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_query_shows_in_the_panel_on_the_sync_thread_and_is_counted_on_its_done_line(window, endpoint):
    from playwright.sync_api import expect

    box = connect(window, endpoint)
    name = traced_as(box)
    send(box, "/query 0.1")
    query = rows(window, name, "query")
    expect(query).to_have_count(1)
    expect(query).to_contain_text("ThreadPoolExecutor")  # from the async consumer too
    expect(query).to_contain_text("'sql': 'SELECT pg_sleep(%s)'")
    expect(query).to_contain_text(re.compile(r"took \d{3}\.\dms"))  # 0.1 s and more
    expect(rows(window, name, "done", "websocket.receive")).to_contain_text("1 query 1")


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_other_clients_connections_show_in_the_panel(window, server, endpoint):
    from playwright.sync_api import expect

    client, name = cli_connection(server, endpoint)
    with client:
        client.send("from the command line")
        assert client.recv(timeout=10) == "from the command line"
    expect(rows(window, name, "in", "websocket.receive")).to_contain_text("from the command line")
    expect(rows(window, name, "exit")).to_have_count(1)


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_clicking_a_record_shows_its_whole_dict(window, endpoint):
    from playwright.sync_api import expect

    box = connect(window, endpoint)
    name = traced_as(box)
    send(box, "x" * 500)
    row = rows(window, name, "in", "websocket.receive")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("…<500 chars>")  # shortened as the console shortens it (MAX_PAYLOAD 64)
    row.click()
    detail = json.loads(window.locator('[data-role="detail"]').text_content())
    assert detail["connection"] == name
    assert detail["event"] == {"type": "websocket.receive", "text": {"$shortened": "x" * 64, "length": 500}}
    assert detail["seq"] == int(row.get_attribute("data-seq"))
    # A bar in the timeline shows its record too: the receive handler's, its done line. (Its own bar: until
    # the done line comes, a busy machine's timeline draws the handler as still running, from the in line.)
    done = rows(window, name, "done", "websocket.receive")
    expect(done).to_have_count(1)
    seq = done.get_attribute("data-seq")
    window.locator(f'svg.timeline rect.handler[data-lane="thread"][data-seq="{seq}"]').click()
    detail = json.loads(window.locator('[data-role="detail"]').text_content())
    assert (detail["connection"], detail["kind"], detail["seq"]) == (name, "done", int(seq))


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_html_in_a_message_is_text_in_the_panel(window, endpoint):
    from playwright.sync_api import expect

    box = connect(window, endpoint)
    name = traced_as(box)
    # Within the server's MAX_PAYLOAD (64 here), so none of it is cut.
    hostile = '<b>bold</b>\u202eevil<img src=x onerror="window.pwned=1">'
    send(box, hostile)
    row = rows(window, name, "in", "websocket.receive")
    expect(row).to_contain_text(
        '<b>bold</b>\\u202eevil<img src=x onerror="window.pwned=1">'
    )  # shown, not obeyed
    row.click()
    assert (
        '\\u202eevil<img src=x onerror=\\"window.pwned=1\\">'
        in window.locator('[data-role="detail"]').text_content()
    )
    assert window.locator(".trace img, .trace script, .trace b").count() == 0
    assert window.evaluate("window.pwned") is None


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_the_cross_stall_shows_with_its_explanation_and_a_wait_linked_to_the_sync_handler(
    windows, server, endpoint
):
    """``/sleep 2`` on the sc pane holds the sync thread; a message on ``endpoint`` from another window
    waits for it (an AsyncConsumer hops onto that thread before every handler; a SyncConsumer's handler
    runs on it), and the panel and timeline say so, in both windows."""
    from playwright.sync_api import expect

    first, second = windows(), windows()
    sleeper = connect(first, "sc")
    sleeper_name = traced_as(sleeper)
    waiter = connect(second, endpoint)
    waiter_name = traced_as(waiter)
    if endpoint == "ac":  # the README's tour, in one window: for the picture
        beside = connect(first, "ac")
        traced_as(beside)
    send(sleeper, "/sleep 2")
    # The sleep's handler is under way: its in line is out.
    expect(rows(second, sleeper_name, "in", "websocket.receive")).to_contain_text("/sleep 2")
    send(waiter, "after the sleep")
    if endpoint == "ac":
        send(beside, "hello")
    for window in (first, second):
        waited = rows(window, waiter_name, "in", "websocket.receive")
        expect(waited).to_contain_text("after the sleep")
        expect(waited.locator(".wait.slow")).to_have_count(1)
        expect(waited.locator(".remark")).to_contain_text(
            re.compile(
                rf"waited [\d.]+m?s for the sync thread, held by {re.escape(sleeper_name)} "
                r"\(websocket\.receive '/sleep 2'"
            )
        )
        # The timeline: the wait, linked to the handler that held the thread, on the sync thread's lane.
        # Its own bar: on a busy machine the connection's handshake may have waited long enough to show.
        seq = waited.get_attribute("data-seq")
        wait_bar = window.locator(
            f'svg.timeline rect.wait.slow[data-connection="{waiter_name}"][data-seq="{seq}"]'
        )
        expect(wait_bar).to_have_attribute("data-held-by", sleeper_name)
        link = window.locator(f'svg.timeline path.link[data-connection="{waiter_name}"]')
        expect(link).to_have_count(1)
        expect(link).to_have_attribute("data-held-by", sleeper_name)
        held = rows(window, sleeper_name, "done", "websocket.receive").last
        assert link.get_attribute("data-to") == held.get_attribute("data-seq")
        assert link.get_attribute("data-from") == waited.get_attribute("data-seq")
        bar = window.locator(
            f'svg.timeline rect.handler[data-lane="thread"][data-seq="{held.get_attribute("data-seq")}"]'
        )
        expect(bar).to_have_attribute("data-thread", re.compile(r"^ThreadPoolExecutor"))
        lane = window.locator(
            f'svg.timeline g.lane-thread[data-name="{bar.get_attribute("data-thread")}"] text'
        )
        expect(lane).to_have_text(re.compile(r"^sync thread · "))
    # The waiting pane says why, as the server told it.
    expect(
        waiter.locator('[data-role="log"] li[data-kind="server"]', has_text="for the sync thread")
    ).to_contain_text(f"held by {sleeper_name}")
    if endpoint == "ac" and SCREENSHOTS:
        from pathlib import Path

        from tests.test_page import logged

        logged(beside, "in", "hello")
        first.locator('[data-role="window"]').select_option(
            "10"
        )  # this stall, not the session's earlier tests
        first.locator(".records").evaluate("list => { list.scrollTop = list.scrollHeight; }")
        target = Path(SCREENSHOTS)
        target.mkdir(parents=True, exist_ok=True)
        first.screenshot(path=target / "page.png", full_page=True)


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_blocked_thread_is_on_its_lane_and_a_blocked_event_loop_is_marked(window, endpoint):
    """``/block`` is time.sleep in both handlers: on sc it holds the sync thread, which is what that thread
    is for; on ac it blocks the event loop, which the timeline marks where it happened."""
    from playwright.sync_api import expect

    box = connect(window, endpoint)
    name = traced_as(box)
    send(box, "/block 0.3")
    expect(box.locator('[data-role="log"] li[data-kind="in"] .body', has_text="blocked 0.3 s")).to_have_count(
        1
    )
    done = rows(window, name, "done", "websocket.receive")
    expect(done).to_have_count(1)
    seq = done.get_attribute("data-seq")
    bar_at = f'svg.timeline rect.handler[data-lane="thread"][data-seq="{seq}"]'
    bar = window.locator(bar_at)
    if endpoint == "sc":
        expect(bar).to_have_attribute("data-thread", re.compile(r"^ThreadPoolExecutor"))
        expect(window.locator(f'svg.timeline rect.blocked[data-connection="{name}"]')).to_have_count(0)
    else:
        # The /block's own mark (a busy machine may mark a slow step of its connect too).
        blocked_at = f'svg.timeline rect.blocked[data-seq="{seq}"]'
        blocked = window.locator(blocked_at)
        expect(bar).to_have_attribute("data-thread", "MainThread")
        expect(blocked).to_have_count(1)
        expect(blocked).to_have_attribute("data-thread", "MainThread")
        lane = window.locator('svg.timeline g.lane-thread[data-name="MainThread"] text')
        expect(lane).to_have_text("event loop · MainThread")
        expect(done.locator(".remark")).to_contain_text("held the event loop's thread for")
        # It lies within the handler's bar: where it happened. Both read at once: the timeline redraws as
        # its clock moves, and a bar read after the redraw is somewhere else.
        x, width, bx, bwidth = window.evaluate(
            """(selectors) => selectors.flatMap((selector) => {
                const rect = document.querySelector(selector);
                return [Number(rect.getAttribute("x")), Number(rect.getAttribute("width"))];
            })""",
            [bar_at, blocked_at],
        )
        assert x - 1 <= bx and bx + bwidth <= x + width + 1


def test_the_filters_work(window, server):
    from playwright.sync_api import expect

    sync_box, async_box = connect(window, "sc"), connect(window, "ac")
    sync_name, async_name = traced_as(sync_box), traced_as(async_box)
    send(sync_box, "one")
    send(async_box, "two")
    # A rule broken: daphne has no websocket.http.response extension, so ?deny= breaks event.type.
    denied_url, tag = server.url_with_tag("ac", "deny=401")
    with pytest.raises(TimeoutError):
        ws_connect(denied_url, open_timeout=0.5)
    denied = server.connection_tagged(tag)
    expect(rows(window, denied, "out")).not_to_have_count(0)
    for name in (sync_name, async_name):
        expect(rows(window, name, "out", "websocket.send")).not_to_have_count(0)
    filters = window.locator('[data-role="filters"]')

    # (filter, option chosen, the attribute every row shown has, its value there, connections among them)
    for select, option, attribute, value, among in (
        ("connection", sync_name, "connection", sync_name, set()),
        ("endpoint", "ac", "endpoint", "ac", {async_name, denied}),
        ("endpoint", "consumers.sync_consumer.ExplorerSyncConsumer", "endpoint", "sc", set()),
        ("event", "websocket.receive", "type", "websocket.receive", {sync_name, async_name}),
        ("event", "kind:exit", "kind", "exit", set()),
    ):
        filters.locator(f'select[name="{select}"]').select_option(option)
        assert set(shown_rows(window, attribute)) == {value}
        assert among <= set(shown_rows(window, "connection"))
        filters.locator(f'select[name="{select}"]').select_option("")

    filters.locator('input[name="violations"]').check()
    violating = window.locator(".records li.record")
    expect(violating.filter(has=window.locator(".remark.violation"))).not_to_have_count(0)
    assert violating.count() == violating.filter(has=window.locator(".remark.violation")).count()
    assert denied in shown_rows(window, "connection")
    expect(violating.first.locator(".remark.violation")).to_contain_text("event.type")
    filters.locator('input[name="violations"]').uncheck()
    expect(rows(window, sync_name)).not_to_have_count(0)


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("reject=1", "refuses the handshake with HTTP 403"),
        ("raise=1", "raised DeliberateError"),
    ],
)
def test_a_refused_handshake_shows_the_servers_reason_in_the_pane(window, endpoint, query, reason):
    """A browser hides why a handshake failed (close 1006); the pane shows what the server said."""
    from playwright.sync_api import expect

    box = connect(window, endpoint, query=query, state="closed")
    traced_as(box)
    told = box.locator('[data-role="log"] li[data-kind="server"]', has_text=reason)
    expect(told).to_have_count(1)
    if query == "raise=1":
        expect(told.locator("pre.traceback")).to_contain_text("DeliberateError: ?raise=1")
    else:
        expect(
            box.locator('[data-role="log"] li[data-kind="server"]', has_text="consumer returned")
        ).to_have_count(1)
    # Hovering the browser's close line lights up everything the server traced of the connection.
    box.locator('[data-role="log"] li[data-kind="close"]').hover()
    expect(window.locator(".records li.linked[data-kind=scope]")).to_have_count(1)


def test_a_refused_origin_shows_in_the_panel(window, server):
    """A page from another origin is refused by the origin check, and cannot open the panel either (so it
    can never see why): the explorer's own page sees the refusal, with the check's reason."""
    from playwright.sync_api import expect

    url, tag = server.url_with_tag("sc")
    with pytest.raises(InvalidStatus):
        ws_connect(url, origin="http://elsewhere.example")
    name = server.connection_tagged(tag)
    expect(rows(window, name, "note")).to_contain_text("origin 'http://elsewhere.example' is not this page's")


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_handlers_exception_shows_its_traceback_in_the_pane(window, endpoint):
    from playwright.sync_api import expect

    box = connect(window, endpoint)
    name = traced_as(box)
    send(box, "/raise")
    told = box.locator('[data-role="log"] li[data-kind="server"]', has_text="raised DeliberateError")
    expect(told).to_have_count(1)
    expect(told.locator("pre.traceback")).to_contain_text(
        "DeliberateError: /raise: an exception in the handler"
    )
    error = rows(window, name, "error")
    expect(error).to_have_count(1)
    error.click()
    expect(window.locator('[data-role="detail"]')).to_contain_text(
        "traceback:\nTraceback (most recent call last)"
    )


def test_the_panel_is_not_traced_and_only_for_allowed_origins(window, server):
    panel_url = server.url("trace")
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(panel_url, origin="http://elsewhere.example")
    assert refused.value.response.status_code == 403
    with ws_connect(panel_url) as watcher:  # a command-line client sends no Origin: let through
        assert json.loads(watcher.recv(timeout=10))["type"] == "hello"
    # The page's panel, the refused one and this one: none of them in the trace.
    paths = [
        (r.get("event") or {}).get("path") for r in read_records(server.recording) if r["kind"] == "scope"
    ]
    assert paths and panel.PATH not in paths
    assert window.locator('[data-role="trace"]').get_attribute("data-live") == panel.PATH


def batches(watcher, quiet):
    """The panel's messages until none comes for ``quiet`` seconds."""
    while True:
        try:
            yield json.loads(watcher.recv(timeout=quiet))
        except TimeoutError:
            return


def burst(server, endpoint):
    """A client's ``/burst`` of BURST messages, all received: the consumer kept working. Its name."""
    client, name = cli_connection(server, endpoint)
    with client:
        client.send(f"/burst {BURST} 16")
        for number in range(1, BURST + 1):
            assert client.recv(timeout=30).startswith(f"{number}/{BURST} ")
        client.send("still here")
        assert client.recv(timeout=30) == "still here"
    return name


def bursting(records, name):
    """The burst's messages among these records, as sent by connection ``name``."""
    return [
        r
        for r in records
        if r["connection"] == name
        and r["kind"] == "out"
        and re.match(rf"\d+/{BURST} ", str((r.get("event") or {}).get("text")))
    ]


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_stalled_panel_loses_records_with_a_count_and_the_consumers_keep_working(server, endpoint):
    with ws_connect(server.url("trace"), max_queue=None) as watcher:
        assert json.loads(watcher.recv(timeout=10))["type"] == "hello"
        name = burst(server, endpoint)  # meanwhile the panel acknowledges nothing
        server.records_of(name)  # the trace's listener has caught up with the burst
        unacknowledged = list(batches(watcher, quiet=1))
        # What it was sent before it stopped: its window of batches, no more.
        assert 1 <= len(unacknowledged) <= panel.WINDOW
        assert sum(len(b["records"]) for b in unacknowledged) <= panel.WINDOW * panel.BATCH_RECORDS
        # It catches up: the rest of its buffer, and how many records it lost.
        received, dropped, pending = [], 0, unacknowledged
        while pending:
            for batch in pending:
                received += batch["records"]
                dropped += batch["dropped"]
                watcher.send(json.dumps({"ack": batch["batch"]}))
            pending = list(batches(watcher, quiet=1))
    assert dropped >= BURST - panel.BUFFER_RECORDS - panel.WINDOW * panel.BATCH_RECORDS
    assert len(bursting(received, name)) + dropped >= BURST  # every record was either sent or counted
    # The trace's other sinks lost nothing: the recording has the whole burst.
    assert len(bursting(read_records(server.recording), name)) == BURST


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_paused_page_says_how_many_records_it_lost(window, server, endpoint):
    """Paused, the page acknowledges nothing, like a page too slow to keep up, while a client bursts."""
    from playwright.sync_api import expect

    pause = window.locator('[data-role="trace-pause"]')
    pause.click()
    expect(pause).to_have_text("Resume")
    name = burst(server, endpoint)  # the consumer is not slowed by the paused page
    server.records_of(name)  # the trace's listener has caught up with the burst
    pause.click()
    # Everything after the page's buffer filled was lost, the burst's end included; then it is live again.
    client, after = cli_connection(server, endpoint)
    with client:
        client.send("after the gap")
        assert client.recv(timeout=10) == "after the gap"
    expect(rows(window, after, "in", "websocket.receive")).to_contain_text("after the gap")
    status = window.locator('[data-role="trace-status"]')
    expect(status).to_contain_text(re.compile(r"[\d,]+ dropped: this page fell behind"))
    lost = int(status.get_attribute("data-dropped-page"))
    assert lost >= BURST - panel.BUFFER_RECORDS - panel.WINDOW * panel.BATCH_RECORDS
    gap = window.locator(".records li.dropped")
    expect(gap).to_contain_text(f"{lost:,} records dropped here: this page fell behind")
    # Where it fell behind: after what it kept of the burst, before what came after.
    assert f"/{BURST} " in gap.locator("xpath=preceding-sibling::li[1]").text_content()
    assert gap.locator("xpath=following-sibling::li[1]").get_attribute("data-connection") in (after, name)


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_the_html_export_opens_offline_and_shows_the_same(browser, server, tmp_path, endpoint):  # noqa: F811
    """A cross-stall recorded by the server, written with ``manage.py trace --html``, opened from file://
    with every request but the file itself refused: the panel, the filters and the linked wait."""
    from playwright.sync_api import expect

    sleeper, sleeper_name = cli_connection(server, "sc")
    waiter, waiter_name = cli_connection(server, endpoint)
    with sleeper, waiter:
        sleeper.send("/sleep 1")
        server.wait_for(rf"{re.escape(sleeper_name)}\s+→ in\s+websocket\.receive")
        waiter.send("after the sleep")
        assert waiter.recv(timeout=10) == "after the sleep"
        assert sleeper.recv(timeout=10) == "slept 1 s"
    server.records_of(sleeper_name)
    server.records_of(waiter_name)
    out = tmp_path / "trace.html"
    output = io.StringIO()
    call_command(
        "trace",
        str(server.recording),
        "--html",
        str(out),
        "-c",
        sleeper_name,
        "-c",
        waiter_name,
        stdout=output,
    )
    assert f"wrote {out}" in output.getvalue()
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing to fetch, by its markup

    context = browser.new_context(viewport={"width": 1440, "height": 900}, offline=True)
    requested = []

    def refuse_the_network(route):
        requested.append(route.request.url)
        return route.continue_() if route.request.url == out.as_uri() else route.abort()

    context.route("**/*", refuse_the_network)
    window = context.new_page()
    errors = []
    window.on("pageerror", lambda error: errors.append(str(error)))
    window.goto(out.as_uri())
    try:
        expect(window.locator('[data-role="trace-state"]')).to_have_text("recorded")
        assert set(shown_rows(window, "connection")) == {sleeper_name, waiter_name}
        waited = rows(window, waiter_name, "in", "websocket.receive")
        expect(waited.locator(".remark")).to_contain_text(f"for the sync thread, held by {sleeper_name}")
        link = window.locator(f'svg.timeline path.link[data-connection="{waiter_name}"]')
        expect(link).to_have_count(1)
        held = rows(window, sleeper_name, "done", "websocket.receive")
        assert link.get_attribute("data-to") == held.get_attribute("data-seq")
        window.locator('select[name="connection"]').select_option(waiter_name)
        assert set(shown_rows(window, "connection")) == {waiter_name}
        waited.click()
        assert json.loads(window.locator('[data-role="detail"]').text_content())["held_by"] == [sleeper_name]
        assert requested == [out.as_uri()]
        assert errors == []
    finally:
        context.close()


def test_a_page_buffer_keeps_its_bound_and_counts_what_it_drops():
    """The listener's side of one page, alone: it never holds more than its bound, and counts the rest."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        subscriber = panel.Subscriber(loop, asyncio.Event())
        for number in range(panel.BUFFER_RECORDS + 10):
            subscriber.offer(json.dumps({"n": number}))
        subscriber.offer("x" * (panel.BUFFER_BYTES + 1))  # one record bigger than the whole buffer
        assert len(subscriber.lines) == panel.BUFFER_RECORDS
        taken = [subscriber.take() for _ in range(panel.BUFFER_RECORDS // panel.BATCH_RECORDS + 1)]
        # The records it kept, in order, then the count of those it lost after them: once.
        kept = [json.loads(line)["n"] for batch, _ in taken for line in batch]
        assert kept == list(range(panel.BUFFER_RECORDS))
        assert [dropped for _, dropped in taken] == [0] * (len(taken) - 1) + [11]
        assert subscriber.take() == ([], 0)
    finally:
        loop.close()
