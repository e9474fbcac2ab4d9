"""The trace's own cost, in one process: no server, no network, no client beside it.

An echo through a real server on this 2-core machine moves by a third from
run to run (the client, the server and the renderer share the cores), far
more than a step that saves a few microseconds per record. Here each
subject's echo runs through channels' ``WebsocketCommunicator`` in this
process, and the figure is the CPU this process spent on it: the consumer,
the trace on its path, the trace's listener thread (each round waits until
the listener has handed on every record, so its work is counted where it
was made), the sync thread's. The trace's renderer process is not counted:
``manage.py bench`` reports it beside a real server.

Then handshakes, the same way: each connection opened, accepted and closed,
its scope carrying the headers the bench's own client sends, beside the
bare consumers. A connection's trace is more than its events (its scope,
its rules, the consumer's stand-ins), and the garbage collections the
subject set off are counted too: a reference cycle per connection is freed
only by the collector, which then runs every few connections.

Then the parts of the trace on a consumer's path, each timed on its own in a
tight loop: what the trace does at a receive, as a handler starts, at a
send, as a handler ends. The listener is stopped meanwhile, so that its
thread takes no turn inside a part, and the records are let go unrendered
(what the listener does with them is in the echo's figure).

Then the renderer process's work per record, which no figure above counts:
each compact echo's records (and full mode's, on ``explorer-ac``), shipped
in frames as the server's side ships them, read back and rendered by the
renderer's own loop, to a file (what the bench's servers write to) and to a
terminal (what a developer watches), both Rich consoles here on /dev/null.

Then what a page watching the trace's panel costs per record: each compact
echo's records made into the page's lines, as the listener thread makes them
beside the event loop while a page watches and has room.

Then the full garbage collections each async subject's echo sets off, with
20 connections echoing at once so that lines wait in the queue as in a
server: a full collection stops every thread for tens of milliseconds.

Run by ``manage.py bench --cost`` as ``python -m explorer.bench.cost``, in a
process of its own, whose trace console goes to a file: this prints JSON.
"""

import argparse
import asyncio
import gc
import json
import logging
import os
import statistics
import sys
import time

RECORDS_PER_ECHO = 3  # a traced echo: the receive in, the send out, the handler done
PAIRS = (("ac", "explorer-ac-off", "explorer-ac-compact"), ("sc", "explorer-sc-off", "explorer-sc-compact"))
BARE = {"ac": "bare-ac", "sc": "bare-sc"}
# What the bench's client (websockets, compression off) sends in its opening handshake.
CLIENT_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"sec-websocket-version", b"13"),
    (b"user-agent", b"Python/3.11 websockets/15.0.1"),
]


async def echo_cpu(communicator, echoes, handler):
    """CPU seconds per echo, of the process and of this thread (the event loop's), over ``echoes``."""
    process, thread = time.process_time(), time.thread_time()
    for _ in range(echoes):
        await communicator.send_to(text_data="hello")
        await communicator.receive_from()
    handler.flush()  # the listener's work for these records, counted here
    return (time.process_time() - process) / echoes, (time.thread_time() - thread) / echoes


async def echoes_per_subject(rounds, echoes):
    """Each subject's median CPU per echo, the subjects interleaved round by round."""
    from channels.testing import WebsocketCommunicator

    from explorer.bench.app import SUBJECTS

    handler = logging.getLogger("explorer.trace").handlers[0]
    subjects = [subject for _, *pair in PAIRS for subject in pair]
    communicators = {}
    for subject in subjects:
        communicators[subject] = WebsocketCommunicator(SUBJECTS[subject], f"/bench/{subject}/")
        connected, _ = await communicators[subject].connect()
        assert connected, subject
    figures = {subject: [] for subject in subjects}
    for round_ in range(rounds + 1):
        for subject in subjects:
            figure = await echo_cpu(communicators[subject], echoes, handler)
            if round_:  # the first warms up
                figures[subject].append(figure)
    for communicator in communicators.values():
        await communicator.disconnect()
    return {
        subject: {
            "cpu_us_per_echo": statistics.median(process for process, _ in runs) * 1e6,
            "loop_cpu_us_per_echo": statistics.median(thread for _, thread in runs) * 1e6,
        }
        for subject, runs in figures.items()
    }


def collections():
    return sum(generation["collections"] for generation in gc.get_stats())


FULL_COLLECTION_SUBJECTS = ("explorer-ac-off", "explorer-ac-capture", "explorer-ac-compact")
FULL_COLLECTION_CONNECTIONS = 20  # echoing at once, as the bench's echo does, so lines wait in the queue


async def full_collections(echoes):
    """Full garbage collections (the oldest generation: every thread stopped, tens of ms on this machine) per
    10,000 echoes of each of ``FULL_COLLECTION_SUBJECTS``, ``echoes`` each, over 20 connections at once.

    What a line costs the collector shows only where lines wait, as they do in a server: each object
    still alive as a young collection runs is carried toward the oldest generation, whose full
    collection comes once a quarter as many objects as it holds have been carried into it."""
    from channels.testing import WebsocketCommunicator

    from explorer.bench.app import SUBJECTS

    figures = {}
    for subject in FULL_COLLECTION_SUBJECTS:
        communicators = [
            WebsocketCommunicator(SUBJECTS[subject], f"/bench/{subject}/")
            for _ in range(FULL_COLLECTION_CONNECTIONS)
        ]
        for communicator in communicators:
            assert (await communicator.connect())[0], subject
        gc.collect()  # each subject starts from the same count
        before = gc.get_stats()[-1]["collections"]
        rounds = max(1, echoes // FULL_COLLECTION_CONNECTIONS)
        for _ in range(rounds):
            for communicator in communicators:
                await communicator.send_to(text_data="hello")
            for communicator in communicators:
                await communicator.receive_from()
        full = gc.get_stats()[-1]["collections"] - before
        figures[subject] = full / (rounds * FULL_COLLECTION_CONNECTIONS) * 10_000
        for communicator in communicators:
            await communicator.disconnect()
    return figures


async def handshake_cpu(subject, count, handler):
    """CPU seconds per handshake (opened, accepted, closed), of the process and of this thread (the event
    loop's), and garbage collections, over ``count``."""
    from channels.testing import WebsocketCommunicator

    from explorer.bench.app import SUBJECTS

    process, thread, collected = time.process_time(), time.thread_time(), collections()
    for _ in range(count):
        communicator = WebsocketCommunicator(SUBJECTS[subject], f"/bench/{subject}/", headers=CLIENT_HEADERS)
        connected, _ = await communicator.connect()
        assert connected, subject
        await communicator.disconnect()
    handler.flush()
    cpu = ((time.process_time() - process) / count, (time.thread_time() - thread) / count)
    return cpu, collections() - collected


async def handshakes_per_subject(rounds, count):
    """Each subject's median CPU per handshake, and its collections, the subjects interleaved."""
    handler = logging.getLogger("explorer.trace").handlers[0]
    subjects = [subject for kind, *pair in PAIRS for subject in (BARE[kind], *pair)]
    figures = {subject: [] for subject in subjects}
    for round_ in range(rounds + 1):
        for subject in subjects:
            figure = await handshake_cpu(subject, count, handler)
            if round_:  # the first warms up
                figures[subject].append(figure)
    return {
        subject: {
            "cpu_us_per_handshake": statistics.median(process for (process, _), _ in runs) * 1e6,
            "loop_cpu_us_per_handshake": statistics.median(thread for (_, thread), _ in runs) * 1e6,
            "collections_per_1000": sum(collected for _, collected in runs) / (len(runs) * count) * 1000,
        }
        for subject, runs in figures.items()
    }


def per_handshake(handshakes):
    """Each endpoint's figures: what the trace adds to a handshake, and the share of the bare consumer's
    handshake rate a server bound by this CPU would keep with the trace on."""
    result = {}
    for kind, off, traced in PAIRS:
        traced_cpu = handshakes[traced]["cpu_us_per_handshake"]
        result[kind] = {
            "us_per_traced_handshake": traced_cpu - handshakes[off]["cpu_us_per_handshake"],
            "share_of_bare": handshakes[BARE[kind]]["cpu_us_per_handshake"] / traced_cpu,
        }
    return result


def per_record(echoes):
    """Each endpoint's figures: what a traced record costs over the trace off, and the share of the
    trace-off throughput a server bound by this CPU would keep."""
    result = {}
    for kind, off, traced in PAIRS:
        off_cpu, traced_cpu = echoes[off]["cpu_us_per_echo"], echoes[traced]["cpu_us_per_echo"]
        result[kind] = {
            "us_per_record": (traced_cpu - off_cpu) / RECORDS_PER_ECHO,
            "cpu_bound_share": off_cpu / traced_cpu,
        }
    return result


async def parts(count):
    """Microseconds per call of each part of the trace on an AsyncConsumer's path, compact mode."""
    from dataclasses import replace

    from explorer.trace.config import trace_config
    from explorer.trace.connection import ConnectionTrace

    handler = logging.getLogger("explorer.trace").handlers[0]
    scope = {
        "type": "websocket",
        "path": "/ws/ac/",
        "headers": [(b"host", b"127.0.0.1")],
        "query_string": b"",
        "subprotocols": [],
        "asgi": {"version": "3.0", "spec_version": "2.3"},
    }

    connect = {"type": "websocket.connect"}

    async def receive():
        nonlocal connect
        if connect is not None:  # the handshake first, so the parts time the path of a well-behaved echo
            event, connect = connect, None
            return event
        return {"type": "websocket.receive", "text": "hello"}

    async def send(event):
        pass

    class Consumer:
        pass

    trace = ConnectionTrace(scope, replace(trace_config(), mode="compact"), send)
    trace.consumer_started(Consumer(), scope)
    traced_receive, traced_send = trace.wrap_receive(receive), trace.wrap_send(send)
    trace.handler_ended(trace.handler_started(await traced_receive()))
    await traced_send({"type": "websocket.accept"})
    timed = {"receive": 0.0, "handler started": 0.0, "send": 0.0, "handler ended": 0.0}
    clock = time.perf_counter  # nothing else runs meanwhile: the listener is stopped
    handler.flush()
    handler.listener.stopping.set()
    handler.listener.join()
    try:
        broken = await timed_parts(count, trace, traced_receive, traced_send, timed, clock, handler)
    finally:
        handler.listen()
    return {part: seconds / count * 1e6 for part, seconds in timed.items()}, broken


async def timed_parts(count, trace, traced_receive, traced_send, timed, clock, handler):
    """Times each part ``count`` times; returns how many rules the timed events broke (none, or the parts
    time a path that checks and words violations, which a well-behaved echo never takes)."""
    from explorer.trace.connection import logging_record

    def let_go():  # unrendered: the listener's work is the echo's figure
        queued = handler.taken().items
        handler.released(handler.held)
        return sum(len(logging_record(item).trace.violations) for item in queued)

    let_go()  # the handshake's records, if the listener left any: not the parts'
    broken = 0
    for _ in range(count):
        started = clock()
        event = await traced_receive()
        received = clock()
        handling = trace.handler_started(event)
        began = clock()
        await traced_send({"type": "websocket.send", "text": "hello"})
        sent = clock()
        trace.handler_ended(handling)
        ended = clock()
        timed["receive"] += received - started
        timed["handler started"] += began - received
        timed["send"] += sent - began
        timed["handler ended"] += ended - sent
        if len(handler.waiting) > 3000:
            broken += let_go()
    return broken + let_go()


RENDERED = ("explorer-ac-compact", "explorer-sc-compact", "explorer-ac-full")  # the renderer's figures


async def queued_records(subject, echoes):
    """The items ``echoes`` echoes of ``subject`` queue, as the listener would take them (it is stopped
    meanwhile, and started again after)."""
    from channels.testing import WebsocketCommunicator

    from explorer.bench.app import SUBJECTS

    handler = logging.getLogger("explorer.trace").handlers[0]
    communicator = WebsocketCommunicator(SUBJECTS[subject], f"/bench/{subject}/")
    connected, _ = await communicator.connect()
    assert connected, subject
    handler.flush()
    handler.listener.stopping.set()
    handler.listener.join()
    try:
        handler.taken()  # the handshake's, if any are left: not an echo's
        for _ in range(echoes):
            await communicator.send_to(text_data="hello")
            await communicator.receive_from()
        for _ in range(500):  # the last handler's end comes after its echo is out: until it is queued too
            if len(handler.waiting) >= echoes * RECORDS_PER_ECHO:
                break
            await asyncio.sleep(0.01)
        batch = handler.taken()
        handler.released(batch.weight)
    finally:
        handler.listen()
    await communicator.disconnect()
    return list(batch.items)


def rendering(rounds, echoes):
    """The renderer process's CPU per record, to a file and to a terminal: each subject's echo records,
    shipped in frames as the server's side ships them, then read back and rendered by the renderer's own
    loop (``renderer.render_frames``), ``rounds`` times; the median. The records are made once: the
    renderer's work is the same for every round."""
    import pickle

    from explorer.trace import renderer
    from explorer.trace.handlers import RichTraceHandler
    from explorer.trace.render import console

    figures = {}
    for subject in RENDERED:
        records = asyncio.run(queued_records(subject, echoes))
        frames = [
            renderer.pickled([renderer.item(each) for each in records[start : start + renderer.FRAME_ITEMS]])
            for start in range(0, len(records), renderer.FRAME_ITEMS)
        ]
        figures[subject] = {"records": len(records)}
        for target, terminal in (("file", False), ("terminal", True)):
            with open(os.devnull, "w", encoding="utf-8") as nowhere:
                sink = RichTraceHandler(console(nowhere, width=120, force_terminal=terminal))
                runs = []
                for _ in range(rounds):
                    started = time.process_time()
                    renderer.render_frames(map(pickle.loads, frames), [sink])
                    runs.append((time.process_time() - started) / len(records))
            figures[subject][f"us_per_record_to_{target}"] = statistics.median(runs) * 1e6
    return figures


PANEL_SUBJECTS = ("explorer-ac-compact", "explorer-sc-compact")


def panel_lines(rounds, echoes):
    """What a watching page costs the listener's thread (beside the event loop, on its GIL) per record:
    each compact echo's records made into the page's lines (``panel.Hub.line``: the record as shown, in
    JSON), ``rounds`` times; the median."""
    from explorer.trace.panel import Hub

    figures = {}
    for subject in PANEL_SUBJECTS:
        records = asyncio.run(queued_records(subject, echoes))
        hub, runs = Hub(), []
        for _ in range(rounds):
            started = time.process_time()
            made = sum(hub.line(number, each) is not None for number, each in enumerate(records))
            runs.append((time.process_time() - started) / len(records))
        # Lines made, not failed (a line that fails is None, and quick): the figure is theirs.
        figures[subject] = {
            "records": len(records),
            "lines": made,
            "us_per_line": statistics.median(runs) * 1e6,
        }
    return figures


def measure(rounds, echoes, handshakes):
    echoed = asyncio.run(echoes_per_subject(rounds, echoes))
    figures = {
        "rounds": rounds,
        "echoes": echoes,
        "handshakes_per_round": handshakes,
        "echo": echoed,
        "per_record": per_record(echoed),
    }
    figures["handshakes"] = asyncio.run(handshakes_per_subject(rounds, handshakes))
    figures["per_handshake"] = per_handshake(figures["handshakes"])
    figures["parts_us"], figures["parts_violations"] = asyncio.run(parts(echoes * 5))
    figures["renderer"] = rendering(rounds, echoes)
    figures["panel"] = panel_lines(rounds, echoes)
    figures["full_collections_echoes"] = echoes * 100
    figures["full_collections_per_10000"] = asyncio.run(full_collections(figures["full_collections_echoes"]))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m explorer.bench.cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--echoes", type=int, default=400)
    parser.add_argument("--handshakes", type=int, default=200)
    options = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
    import django

    django.setup()
    figures = measure(options.rounds, options.echoes, options.handshakes)
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
