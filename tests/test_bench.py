"""``manage.py bench --quick``: every scenario runs and the report has its shape (never a speed)."""

import asyncio
import json
import logging
import os
import shutil
from io import StringIO

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command

from explorer.bench import SUBJECT_NAMES
from explorer.bench.app import SUBJECTS
from explorer.management.commands.bench import (
    EQUAL_LOAD_SHARE,
    HANDSHAKE_SUBJECTS,
    QUICK,
    RECORDS_PER_ECHO,
    STALLED_PAGE_SUBJECT,
    TARGETS,
    Command,
)
from explorer.trace import panel
from explorer.trace.render import command_console


def test_the_client_knows_the_subjects_the_server_serves_by_name():
    assert tuple(SUBJECTS) == SUBJECT_NAMES


async def test_the_capture_alone_makes_every_line_and_queues_none(endpoint, monkeypatch):
    """``explorer-KIND-capture`` runs compact's whole capture (each line made, with its rules and notes) and
    lets the lines go: the bench's measure of what no queue or renderer can take back."""
    from explorer.bench.app import CapturedOnly
    from explorer.trace.connection import ConnectionTrace
    from explorer.trace.entry import entry_of
    from tests.explorer.test_any_consumer import ECHO_STEPS

    handler = logging.getLogger("explorer.trace").handlers[0]
    taken_in = handler.accepted
    subject = f"explorer-{endpoint}-capture"
    communicator = WebsocketCommunicator(SUBJECTS[subject], f"/bench/{subject}/")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"
    await communicator.disconnect()
    assert handler.accepted == taken_in  # not a line queued

    made = []
    monkeypatch.setattr(CapturedOnly, "deliver", staticmethod(lambda values, *_: made.append(values)))
    communicator = WebsocketCommunicator(SUBJECTS[subject], f"/bench/{subject}/")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="hello")
    await communicator.receive_from()
    await communicator.disconnect()
    assert [(entry.kind, (entry.event or {}).get("type")) for entry in map(entry_of, made)] == ECHO_STEPS
    assert ConnectionTrace.deliver is not CapturedOnly.deliver  # every other trace still delivers


def test_a_quick_run_reports_every_subject_and_scenario(tmp_path):
    """Its trace console on a pseudo-terminal (``--terminal``): the wire tests' servers all write to pipes."""
    out = StringIO()
    call_command("bench", "--quick", "--terminal", "--json", str(tmp_path / "bench.json"), stdout=out)
    runs = json.loads((tmp_path / "bench.json").read_text())
    text = out.getvalue()
    assert runs["console"] == "terminal" and "The trace's console went to a pseudo-terminal." in text
    for title in (
        "Echo:",
        "Handshakes:",
        "Concurrency:",
        "Cross-stall:",
        "ORM stall:",
        "Scale, on a server of its own:",
        "Targets",
    ):
        assert title in text
    [report] = runs["servers"].values()
    assert report["label"].startswith("daphne 4.2")

    echo = {row["subject"]: row for row in report["echo"]}
    stalled = f"{STALLED_PAGE_SUBJECT} beside a stalled page"
    assert set(echo) == {*SUBJECTS, stalled}
    assert echo[stalled]["vs_trace_off"] is not None  # compared with the same consumer, trace off
    # The page never acknowledged: the panel sent it its window of batches and held the rest.
    assert 1 <= echo[stalled]["page_batches"] <= panel.WINDOW
    for row in echo.values():
        assert row["messages"] == QUICK["connections"] * QUICK["trips"] * QUICK["rounds"]
        assert row["rate"] > 0 and row["cpu_us_per_message"] is not None
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert (
            0 < row["client_cpu_share"] <= 2
        )  # the bench's own CPU over the time: one thread, near one core
    # The trace's renderer process did the traced subjects' rendering, and is counted apart.
    traced = [row for subject, row in echo.items() if subject.endswith(("-compact", "-full"))]
    assert sum(row["renderer_cpu_us_per_message"] for row in traced) > 0
    assert echo["raw"]["vs_raw"] == 1
    assert echo["bare-ac"]["vs_bare"] == echo["bare-sc"]["vs_bare"] == 1
    assert echo["explorer-sc-off"]["vs_trace_off"] == 1
    assert echo["explorer-ac-full"]["vs_trace_off"] == pytest.approx(
        echo["explorer-ac-full"]["rate"] / echo["explorer-ac-off"]["rate"]
    )

    # At equal load: each endpoint's trace modes paced at one rate, a share of the slowest one's.
    paced = {row["subject"]: row for row in report["equal_load"]}
    modes = ("off", "capture", "compact", "full")
    assert set(paced) == {f"explorer-{kind}-{mode}" for kind in ("ac", "sc") for mode in modes}
    for kind in ("ac", "sc"):
        rows = [paced[f"explorer-{kind}-{mode}"] for mode in modes]
        slowest = min(echo[f"explorer-{kind}-{mode}"]["rate"] for mode in modes)
        assert [row["offered_rate"] for row in rows] == [pytest.approx(EQUAL_LOAD_SHARE * slowest)] * 4
        for row in rows:
            # Paced: a client's messages are an interval apart, so none goes faster than offered.
            trips = row["messages"] / QUICK["rounds"] / QUICK["connections"]
            assert 0 < row["rate"] <= row["offered_rate"] * trips / (trips - 1)
            assert row["cpu_us_per_message"] > 0
    assert "Echo at equal load" in text

    shakes = {row["subject"]: row for row in report["handshakes"]}
    assert list(shakes) == list(HANDSHAKE_SUBJECTS)
    assert all(row["handshakes_per_s"] > 0 for row in shakes.values())
    # Counted over the rounds (the machine's count of connections a full listen queue dropped).
    assert all(isinstance(row["listen_overflows"], int) for row in shakes.values())
    assert isinstance(report["scale"]["listen_overflows"], int)
    assert "listen-queue drops" in text
    assert shakes["bare-ac"]["vs_bare"] == 1 and shakes["raw"]["vs_bare"] is None

    sleepers = {row["subject"]: row for row in report["concurrency"]["sleepers"]}
    assert set(sleepers) == {"explorer-ac-off", "explorer-sc-off"}
    assert all(row["all_answered_s"] >= row["sleep"] for row in sleepers.values())  # a sleep lasts that long
    assert set(report["concurrency"]["cross_stall"]["echo_s"]) == {"explorer-ac-off", "bare-ac", "raw"}

    stall = report["query_stall"]  # echo and /history on both endpoints, alone and beside a sync /query loop
    assert stall["alone"]["queries"] == 0 and stall["beside queries"]["queries"] >= 1
    for phase in ("alone", "beside queries"):
        for subject in ("explorer-ac-off", "explorer-sc-off"):
            for operation in ("echo", "history"):
                figures = stall[phase][subject][operation]
                assert (
                    figures["count"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
                )
                assert 0 <= figures["over_100ms"] <= figures["count"]
    # Every query held the sync thread for 0.5 s: an operation on each endpoint waited for one.
    assert any(
        stall["beside queries"][subject][op]["max_ms"] >= 100
        for subject in ("explorer-ac-off",)
        for op in ("echo", "history")
    )

    scale = report["scale"]
    assert scale["connections"] == scale["answered"] == QUICK["scale"]
    assert scale["open"]["open_files"] >= scale["before"]["open_files"] + QUICK["scale"]  # one socket each

    assert [target["target"] for target in report["targets"]] == [target.name for target in TARGETS]
    assert all(isinstance(target["met"], bool) for target in report["targets"])
    per_event = [t for t in report["targets"] if "server CPU per traced event" in t["target"]]
    assert len(per_event) == 2 and all(t["value"] is not None for t in per_event)
    # Beside the compact trace's figures, the same figure with its capture alone.
    alone = {t["target"]: t["capture_alone"] for t in report["targets"] if t["capture_alone"] is not None}
    assert set(alone) == {
        *(f"explorer-{kind} trace compact vs trace off, msg/s" for kind in ("ac", "sc")),
        *(f"explorer-{kind} compact p99 vs trace off p99" for kind in ("ac", "sc")),
        *(f"explorer-{kind} compact: server CPU per traced event, at equal load" for kind in ("ac", "sc")),
    }
    assert alone["explorer-ac trace compact vs trace off, msg/s"] == pytest.approx(
        echo["explorer-ac-capture"]["rate"] / echo["explorer-ac-off"]["rate"]
    )
    assert "capture alone" in text and "(its capture alone " in text
    assert runs["machine"]["cpus"] and "daphne" in runs["machine"]["versions"]
    assert isinstance(report["dropped_trace_records"], int)
    screen = report["screen"]  # what the trace's console said as the server stopped
    assert screen["records"] > 0 and screen["p50_ms"] <= screen["p99_ms"] <= screen["max_ms"]
    assert screen["event_p50_ms"] <= screen["event_p99_ms"] <= screen["event_max_ms"]
    assert screen["p50_ms"] <= screen["event_p50_ms"]  # a line is made at its event or after it
    pauses = report["pauses"]  # the server's full garbage collections, as its trace said them
    assert pauses["count"] >= 0 and pauses["longest_ms"] <= pauses["total_ms"]
    # The scale scenario ran on a server of its own, whose console said its own lag as it stopped.
    assert scale["screen"]["records"] > 0 and scale["pauses"]["count"] >= 0 and scale["own_server"]
    [scale_lag] = [t for t in report["targets"] if "while the scale scenario" in t["target"]]
    assert scale_lag["value"] == scale["screen"]["p99_ms"]
    assert "Scale, on a server of its own" in text


async def test_a_traced_echo_makes_the_records_the_bench_counts(trace, endpoint):
    """The bench's CPU per traced event divides by RECORDS_PER_ECHO: an echo is an in, an out, a done."""
    client = WebsocketCommunicator(
        SUBJECTS[f"explorer-{endpoint}-compact"], f"/bench/explorer-{endpoint}-compact/"
    )
    await client.connect()
    before = len(trace.records())
    await client.send_to(text_data="hello")
    assert await client.receive_from() == "hello"
    await client.disconnect()
    records = trace.records()
    echo = [r for r in records[before:] if r["kind"] in ("in", "out", "done")][:RECORDS_PER_ECHO]
    assert [(r["kind"], r["event"]["type"]) for r in echo] == [
        ("in", "websocket.receive"),
        ("out", "websocket.send"),
        ("done", "websocket.receive"),
    ]
    assert not [
        r for r in records[before:] if r["kind"] == "in" and r["event"]["type"] == "websocket.receive"
    ][1:]


@pytest.mark.parametrize(("option", "value"), [("--scale", "9001"), ("--connections", "0")])
def test_sizes_out_of_bounds_are_refused(option, value):
    with pytest.raises(CommandError):
        call_command("bench", option, value, stdout=StringIO())


def test_handshakes_stay_inside_the_servers_listen_queue(tmp_path):
    """Past daphne's listen backlog (Twisted's 50) the kernel drops a handshake's SYN (or final ACK) and
    it is sent again about a second later: a handshakes/s figure would then measure the retry, not the
    server. The bench keeps fewer handshakes in flight, and counts what listen queues dropped anyway
    (the machine's count: nothing else here fills a listen queue while it runs)."""
    from explorer.bench import scenarios

    server = scenarios.start_server(tmp_path / "server.log")
    try:
        # The slowest subject to accept, with more handshakes than the backlog.
        row = asyncio.run(scenarios.handshakes(server, "explorer-ac-compact", 300))
    finally:
        server.stop()
    assert row["listen_overflows"] == 0


def test_a_target_says_its_figure_from_each_round_alone():
    """A ratio is also taken within each round, whose subjects ran back to back: the spread is the
    machine's noise, which the figure over all rounds (a ratio of medians) does not show."""
    [compact] = [
        target for target in TARGETS if target.name == "explorer-ac trace compact vs trace off, msg/s"
    ]
    [handshakes] = [target for target in TARGETS if target.name.startswith("explorer-ac compact handshakes")]
    [lag] = [target for target in TARGETS if target.name == "line made to screen, p99 (the console's lag)"]

    def row(subject, rate, handshake_rate=None):
        return {"subject": subject, "rate": rate, "handshakes_per_s": handshake_rate}

    echo_rounds = [  # the machine slowed down in the second round: every subject with it
        [row("explorer-ac-off", 4000), row("explorer-ac-compact", 3600)],
        [row("explorer-ac-off", 2000), row("explorer-ac-compact", 1000)],
        [row("explorer-ac-off", 3000), row("explorer-ac-compact", 2400)],
    ]
    handshake_rounds = [[row("bare-ac", None, 600), row("explorer-ac-compact", None, 300)]] * 3
    measured = {
        "echo": [row("explorer-ac-off", 3000), row("explorer-ac-compact", 2400)],
        "handshakes": [row("bare-ac", None, 600), row("explorer-ac-compact", None, 300)],
        "echo_rounds": echo_rounds,
        "handshake_rounds": handshake_rounds,
        "screen": {"p99_ms": 50.0},
    }
    checked = compact.check(measured)
    assert checked["value"] == pytest.approx(0.8)
    assert checked["rounds"] == pytest.approx([0.9, 0.5, 0.8])
    assert handshakes.check(measured)["rounds"] == pytest.approx([0.5, 0.5, 0.5])
    assert lag.check(measured)["rounds"] == []  # a figure of the whole run: no round has its own

    out = StringIO()
    command = Command(stdout=out)
    command.console = command_console(out)
    command.console.width = 200
    results = {
        "label": "daphne",
        "targets": [compact.check(measured), lag.check(measured)],
        "dropped_trace_records": None,
    }
    command.report_targets(results)
    text = out.getvalue()
    assert "50% to 90%" in text  # the compact ratio's lowest and highest round
    assert "line made to screen" in text


def test_the_trace_cost_in_one_process_is_measured_for_both_endpoints(tmp_path):
    """``bench --cost``: each endpoint's echo with the trace off and compact, in a process of its own, and
    the parts of the trace on a consumer's path (never a speed: only that each is measured)."""
    out = StringIO()
    call_command("bench", "--cost", "--quick", "--json", str(tmp_path / "cost.json"), stdout=out)
    figures = json.loads((tmp_path / "cost.json").read_text())
    assert set(figures["echo"]) == {
        "explorer-ac-off",
        "explorer-ac-compact",
        "explorer-sc-off",
        "explorer-sc-compact",
    }
    for kind in ("ac", "sc"):
        off, compact = (figures["echo"][f"explorer-{kind}-{mode}"] for mode in ("off", "compact"))
        assert 0 < off["loop_cpu_us_per_echo"] <= off["cpu_us_per_echo"]
        assert figures["per_record"][kind]["us_per_record"] == pytest.approx(
            (compact["cpu_us_per_echo"] - off["cpu_us_per_echo"]) / RECORDS_PER_ECHO
        )
        assert figures["per_record"][kind]["cpu_bound_share"] == pytest.approx(
            off["cpu_us_per_echo"] / compact["cpu_us_per_echo"]
        )
    # Handshakes: each endpoint's bare consumer beside the explorer's with the trace off and compact.
    assert set(figures["handshakes"]) == {*figures["echo"], "bare-ac", "bare-sc"}
    for kind in ("ac", "sc"):
        bare, off, compact = (
            figures["handshakes"][subject]
            for subject in (f"bare-{kind}", f"explorer-{kind}-off", f"explorer-{kind}-compact")
        )
        for row in (bare, off, compact):
            assert 0 < row["loop_cpu_us_per_handshake"] <= row["cpu_us_per_handshake"]
            assert row["collections_per_1000"] >= 0
        assert figures["per_handshake"][kind]["us_per_traced_handshake"] == pytest.approx(
            compact["cpu_us_per_handshake"] - off["cpu_us_per_handshake"]
        )
        assert figures["per_handshake"][kind]["share_of_bare"] == pytest.approx(
            bare["cpu_us_per_handshake"] / compact["cpu_us_per_handshake"]
        )
    assert set(figures["parts_us"]) == {"receive", "handler started", "send", "handler ended"}
    assert all(us > 0 for us in figures["parts_us"].values())
    # The parts time a well-behaved echo's path: one that broke rules would time their checks and words.
    assert figures["parts_violations"] == 0
    # The renderer's work, on each endpoint's echo records: every record of the echoes, none left out.
    assert set(figures["renderer"]) == {"explorer-ac-compact", "explorer-sc-compact", "explorer-ac-full"}
    for rendered in figures["renderer"].values():
        assert rendered["records"] == figures["echoes"] * RECORDS_PER_ECHO
        assert rendered["us_per_record_to_file"] > 0 and rendered["us_per_record_to_terminal"] > 0
    # A watching page's lines, on each endpoint's echo records: every record made into one.
    assert set(figures["panel"]) == {"explorer-ac-compact", "explorer-sc-compact"}
    for lines in figures["panel"].values():
        assert lines["records"] == figures["echoes"] * RECORDS_PER_ECHO and lines["us_per_line"] > 0
        assert lines["lines"] == lines["records"]  # every one made, none failed
    # Full collections, where lines wait as in a server: counted for the async echo off, captured, compact.
    assert figures["full_collections_echoes"] == figures["echoes"] * 100
    assert set(figures["full_collections_per_10000"]) == {
        "explorer-ac-off",
        "explorer-ac-capture",
        "explorer-ac-compact",
    }
    assert all(count >= 0 for count in figures["full_collections_per_10000"].values())
    assert figures["machine"]["cpus"]
    text = out.getvalue()
    assert "Full garbage collections, in one process" in text
    assert "The trace's own cost, in one process" in text and "handler started" in text
    assert "The renderer process's work" in text and "A watching page's lines" in text
    assert "explorer-sc-compact" in text
    assert "Handshakes, in one process" in text and "bare-sc" in text


def test_the_bench_app_serves_with_the_interpreters_own_garbage_collector_settings():
    """The servers are measured as a user runs them: importing the bench's app changes no setting of the
    garbage collector, whatever the environment says (an experiment's switches were once left in it)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import gc, django; django.setup(); before = (gc.get_threshold(), gc.get_freeze_count()); "
        "import explorer.bench.app; print(before == (gc.get_threshold(), gc.get_freeze_count()))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings", "FREEZE": "1", "GCT": "1,1,1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr


def test_the_trace_cost_in_instructions_is_counted_by_valgrind_for_both_endpoints(tmp_path):
    """``bench --instructions``: each subject's echo, counted by valgrind (the count less a shorter run's,
    so start-up cancels out), and each endpoint's instructions per traced record (never a speed)."""
    if shutil.which("valgrind") is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is missing; .ci/run installs it (apt-get install valgrind)")
        pytest.skip("valgrind is not installed here (Debian: apt-get install valgrind)")
    out = StringIO()
    call_command("bench", "--instructions", "--quick", "--json", str(tmp_path / "count.json"), stdout=out)
    figures = json.loads((tmp_path / "count.json").read_text())
    per_echo = figures["per_echo"]
    assert set(per_echo) == {
        "bare-ac",
        "explorer-ac-off",
        "explorer-ac-compact",
        "bare-sc",
        "explorer-sc-off",
        "explorer-sc-compact",
    }
    # Counted, not made up: an echo through channels runs hundreds of thousands of instructions.
    assert all(count > 100_000 for count in per_echo.values()), per_echo
    for kind in ("ac", "sc"):
        compact, off = per_echo[f"explorer-{kind}-compact"], per_echo[f"explorer-{kind}-off"]
        assert figures["per_record"][kind] == pytest.approx((compact - off) / RECORDS_PER_ECHO)
    text = out.getvalue()
    assert "Instructions, counted by valgrind" in text and "explorer-sc-compact" in text


def test_a_server_on_a_pseudo_terminal_writes_the_trace_a_developer_sees(tmp_path, endpoint):
    """``bench --terminal``: the server's console is a pseudo-terminal, so the trace takes the path a
    developer's terminal gets (escape codes, lines fitted to its 120 columns), and the bench reads it."""
    import re

    from websockets.asyncio.client import connect

    from explorer.bench import scenarios

    server = scenarios.start_server(tmp_path / "server.log", "daphne", terminal=True)
    try:

        async def echo():
            async with connect(server.url(f"explorer-{endpoint}-compact")) as ws:
                await ws.send("hello from a terminal " * 10)
                await ws.recv()

        asyncio.run(echo())
        line = server.running.wait_for(r"→ .*in.*websocket\.receive.*hello from a terminal")
    finally:
        server.stop()
    assert line and "\x1b[" in line  # styled, as on a terminal; a file's lines are plain
    visible = re.sub(r"\x1b\[[0-9;]*m", "", line)
    assert len(visible) == 120 and visible.endswith("…")  # the payload cut to the terminal's width
