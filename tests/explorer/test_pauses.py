"""Full garbage collections stop every thread at once: the trace counts them and says them as it stops."""

import gc
import os
import subprocess
import sys

from explorer.bench.scenarios import BenchServer
from explorer.trace.pauses import Pauses
from tests.conftest import ROOT


def test_a_full_collection_is_counted_and_a_younger_one_is_not():
    pauses = Pauses()
    gc.callbacks.append(pauses)
    try:
        gc.collect(0)
        gc.collect(1)
        assert pauses.count == 0
        assert (
            pauses.summary() == "0 full garbage collections paused the process: longest 0.0 ms, 0.0 ms in all"
        )
        gc.collect()
        gc.collect(2)
    finally:
        gc.callbacks.remove(pauses)
    assert pauses.count == 2
    assert 0 < pauses.longest <= pauses.total
    assert pauses.summary().startswith("2 full garbage collections paused the process: longest ")


SERVED = """
import asyncio, gc, django
django.setup()
from channels.testing import WebsocketCommunicator
from explorer.asgi import application

async def main():
    client = WebsocketCommunicator(application, "/ws/ac/")
    await client.connect()
    await client.disconnect()
    gc.collect()
    print("served")

asyncio.run(main())
"""
QUIET = "import gc, django; django.setup(); gc.collect()"


def run(code):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_process_that_traced_nothing_says_nothing_of_its_pauses():
    """A management command that serves no connection is not the trace's to speak for."""
    result = run(QUIET)
    assert result.returncode == 0 and "garbage" not in result.stderr


def test_the_process_says_its_pauses_once_as_it_stops_and_the_bench_reads_them(tmp_path):
    result = run(SERVED)
    assert result.returncode == 0 and result.stdout.strip() == "served"
    said = [line for line in result.stderr.splitlines() if "full garbage collections paused" in line]
    assert len(said) == 1 and said[0].startswith("explorer.trace: ")
    log = tmp_path / "server.log"
    log.write_text(result.stderr)
    pauses = BenchServer("ws://127.0.0.1:1", log=log).pauses()
    assert pauses["count"] >= 1 and 0 < pauses["longest_ms"] <= pauses["total_ms"]


def test_a_server_log_that_does_not_say_its_pauses_leaves_them_unknown(tmp_path):
    """A server that ends without the trace's exit hook: the bench says it does not know, not none."""
    log = tmp_path / "server.log"
    log.write_text("explorer.trace: 3 records shown; from line made to screen: p50 1.0 ms\n")
    assert BenchServer("ws://127.0.0.1:1", log=log).pauses() is None
