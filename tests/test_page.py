"""The page at ``/`` in a real browser: Debian's chromium, driven by Playwright, against a real daphne."""

import os
import re
from pathlib import Path

import pytest

from consumers.core import ExplorerCore

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Where the page's screenshot goes: EXPLORER_SCREENSHOTS=docs refreshes the README's picture.
SCREENSHOTS = os.environ.get("EXPLORER_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed here (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{server.port}/")
    yield page
    context.close()


def pane(page, endpoint):
    return page.locator(f'.pane[data-endpoint="{endpoint}"]')


def connect(page, endpoint, query="", subprotocols="", state="open"):
    from playwright.sync_api import expect

    box = pane(page, endpoint)
    box.locator('input[name="subprotocols"]').fill(subprotocols)
    box.locator('input[name="query"]').fill(query)
    box.locator('[data-role="connect-button"]').click()
    expect(box.locator('[data-role="state"]')).to_have_text(state)
    return box


def send(box, text, binary=False):
    box.locator('input[name="message"]').fill(text)
    box.get_by_role("button", name="Send binary" if binary else "Send text", exact=True).click()


def logged(box, kind, text):
    """Wait until the pane's log has an entry of this kind with exactly this text."""
    from playwright.sync_api import expect

    entry = box.locator(f'[data-role="log"] li[data-kind="{kind}"] .body', has_text=text)
    expect(entry.filter(has_text=re.compile(f"^{re.escape(text)}$"))).to_have_count(1)


def test_the_page_is_served_with_its_static_files(page):
    assert page.title() == "ASGI consumer explorer"
    assert page.locator(".pane").count() == 2
    # The stylesheet arrived: the panes sit side by side.
    sc, ac = (pane(page, e).bounding_box() for e in ("sc", "ac"))
    assert sc["x"] < ac["x"] and abs(sc["y"] - ac["y"]) < 1


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_connects_and_echoes_text_and_binary(page, endpoint):
    box = connect(page, endpoint)
    logged(box, "open", "open, subprotocol: none")
    send(box, "hello")
    logged(box, "in", "hello")
    send(box, "héllo", binary=True)
    logged(box, "out", "binary, 6 bytes: 68 c3 a9 6c 6c 6f")
    logged(box, "in", "binary, 6 bytes: 68 c3 a9 6c 6c 6f")


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_offers_subprotocols_and_shows_the_one_accepted(page, endpoint):
    box = connect(page, endpoint, query="subprotocol=chat", subprotocols="json, chat")
    logged(box, "open", "open, subprotocol: chat")


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_close_with_a_code_and_reason_shows_in_the_log(page, endpoint):
    box = connect(page, endpoint)
    box.locator('input[name="code"]').fill("4000")
    box.locator('input[name="reason"]').fill("bye")
    box.locator('[data-role="close"] button[type="submit"]').click()
    logged(box, "info", 'closing with code 4000, reason "bye"')
    # The close event reports the server's answer, and autobahn answers 1000 with no reason.
    logged(box, "close", 'close, code 1000, reason "", wasClean true')
    assert box.locator('[data-role="state"]').text_content() == "closed"


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_server_close_arrives_without_its_reason(page, server, endpoint):
    _, tag = server.url_with_tag(endpoint)
    box = connect(page, endpoint, query=f"tag={tag}")
    box.locator('[data-command="close"]').click()  # puts "/close 4000 bye" in the message box
    assert box.locator('input[name="message"]').input_value() == "/close 4000 bye"
    box.get_by_role("button", name="Send text").click()
    # daphne 4.2 drops the reason; autobahn resets the connection once the browser answers.
    logged(box, "close", 'close, code 4000, reason "", wasClean false')
    [close] = [r for r in server.records_of(server.connection_tagged(tag)) if r["kind"] == "out"][-1:]
    assert close["event"] == {"type": "websocket.close", "code": 4000, "reason": "bye"}
    assert any("so browsers say wasClean false" in note for note in close["notes"])


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_a_rejected_handshake_shows_as_an_error_and_a_close(page, endpoint):
    box = connect(page, endpoint, query="reject=1", state="closed")
    logged(box, "close", 'close, code 1006, reason "", wasClean false')
    assert box.locator('[data-role="log"] li[data-kind="error"]').count() == 1


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_command_buttons_send_what_the_server_offers(page, endpoint):
    box = connect(page, endpoint)
    names = box.locator("[data-command]").evaluate_all("buttons => buttons.map(b => b.dataset.command)")
    assert names == list(ExplorerCore.COMMANDS)
    box.locator('[data-command="whoami"]').click()
    expected = "SyncConsumer" if endpoint == "sc" else "AsyncConsumer"
    from playwright.sync_api import expect

    expect(box.locator('[data-role="log"] li[data-kind="in"] .body').last).to_contain_text(
        f'"kind": "{expected}"'
    )


@pytest.mark.parametrize("endpoint", ["sc", "ac"])
def test_html_in_a_message_is_shown_literally(page, endpoint):
    box = connect(page, endpoint)
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'
    send(box, hostile)
    logged(box, "in", hostile)
    assert box.locator('[data-role="log"] img, [data-role="log"] script, [data-role="log"] b').count() == 0
    assert page.evaluate("window.pwned") is None


def test_two_windows_in_one_room_sync_and_async(browser, server, tmp_path):
    """The Channels tutorial's end result, across the two endpoints, with a screenshot of the page.

    (The README's picture, docs/page.png, is taken during a cross-stall in tests/test_panel.py.)
    """
    from playwright.sync_api import expect

    windows = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        window = context.new_page()
        window.goto(f"http://127.0.0.1:{server.port}/")
        windows.append(window)
    first, second = windows
    sync_box = connect(first, "sc")
    async_box = connect(second, "ac")
    for box in (sync_box, async_box):
        box.get_by_role("button", name="Join", exact=True).click()
        logged(box, "in", "joined lobby")
    sync_box.locator('input[name="say"]').fill("hello from the sync window")
    sync_box.get_by_role("button", name="Say", exact=True).click()
    async_box.locator('input[name="say"]').fill("and hello from the async one")
    async_box.get_by_role("button", name="Say", exact=True).click()
    for box in (sync_box, async_box):
        messages = box.locator('[data-role="log"] li[data-kind="in"] .body')
        expect(
            messages.filter(has_text=re.compile(r"^\[lobby\] sc#\d+: hello from the sync window$"))
        ).to_have_count(1)
        expect(
            messages.filter(has_text=re.compile(r"^\[lobby\] ac#\d+: and hello from the async one$"))
        ).to_have_count(1)
    # The first window drives its async pane too, for a picture of both.
    async_in_first = connect(first, "ac", query="subprotocol=chat", subprotocols="chat")
    send(async_in_first, "/sleep 0.2")
    logged(async_in_first, "in", "slept 0.2 s")
    send(async_in_first, "bin", binary=True)
    logged(async_in_first, "in", "binary, 3 bytes: 62 69 6e")
    first.screenshot(path=tmp_path / "page.png", full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    for window in windows:
        window.context.close()
