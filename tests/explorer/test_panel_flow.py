"""The page panel's flow to one page, with no browser: what it sends is held to what the page has read.

Apart from ``tests/test_panel.py``, whose browser (Playwright's sync API) keeps an event loop running in
the test's thread, where an async test cannot run.
"""

import json

from explorer.trace import panel


async def test_a_page_that_acknowledges_what_it_never_read_is_sent_no_more_than_the_server_holds(monkeypatch):
    """An acknowledgement is the page's word; what the server still holds for it is the server's (where it
    shows it, ``explorer.unsent``). A client that acknowledges every batch and reads none is sent nothing
    more once the server holds a buffer's worth for it, and is sent the rest once it reads."""

    from channels.testing import WebsocketCommunicator

    unsent = [0]  # bytes the server holds for the page, as the probe reads them
    monkeypatch.setattr(panel, "probe", lambda send: lambda: unsent[0])
    page = WebsocketCommunicator(panel.TracePanel(), panel.PATH, headers=[(b"origin", b"http://x")])
    assert (await page.connect())[0]
    assert json.loads(await page.receive_from())["type"] == "hello"

    def publish(text):
        panel.hub.publish({"kind": "note", "note": text})

    async def until(note):
        """Batches, each acknowledged, until one holds ``note`` (the recent records the page gets as it
        opens come first: earlier tests' records, in a whole run)."""
        while True:
            batch = json.loads(await page.receive_from(timeout=5))
            await page.send_to(text_data=json.dumps({"ack": batch["batch"]}))
            if any(record.get("note") == note for record in batch["records"]):
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
