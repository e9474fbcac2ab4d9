"""The trace's own cost in instructions: counted by valgrind, which holds far stiller than time.

CPU time on this shared 2-core machine moves by a third between runs, in
a server and in one process alike, far more than a step that saves a few
microseconds per record; an instruction count moves by up to 3%. Each
subject's echo runs through channels' ``WebsocketCommunicator`` in one
process (as ``cost`` does) under ``valgrind --tool=cachegrind``, twice: with
a few echoes and with more. The difference, over the difference in
echoes, is what one echo takes, every thread of the process counted (the
trace's listener too), start-up and warm-up cancelled out. The trace's
renderer process is not counted: valgrind does not follow it.

The objects the process holds once warmed up are frozen (``gc.freeze``):
a full garbage collection walks them all, millions of instructions that
fall in one run and not in the other. The collections the echoes set off
are still counted, each over the objects made since.

Instructions are not time: a cache miss or a wait for the GIL costs time
and no instruction. They rank the trace's parts and show a step's saving
where time cannot; ``manage.py bench`` measures the time beside a real
server.

Run by ``manage.py bench --instructions``; ``python -m
explorer.bench.instructions SUBJECT ECHOES`` is the program valgrind runs.
"""

import argparse
import asyncio
import gc
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from explorer.bench.cost import BARE, PAIRS, RECORDS_PER_ECHO

WARM_UP = 50  # echoes before the counted ones, in both runs: their cost cancels out
SLOWER = 50  # about how much slower a program runs under valgrind
COUNTED = re.compile(r"I\s+refs:\s+([\d,]+)")
SUBJECTS = [subject for kind, off, traced in PAIRS for subject in (BARE[kind], off, traced)]


def available():
    return shutil.which("valgrind") is not None


def instructions(subject, echoes, cwd):
    """Instructions the whole process ran for ``echoes`` echoes of ``subject`` (and its start-up)."""
    with tempfile.TemporaryDirectory() as directory:
        said = Path(directory) / "valgrind.log"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=cachegrind",
                "--cache-sim=no",
                "--cachegrind-out-file=/dev/null",
                f"--log-file={said}",
                sys.executable,
                "-m",
                "explorer.bench.instructions",
                subject,
                str(echoes),
            ],
            cwd=cwd,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings", "PYTHONPATH": str(cwd)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,  # the trace's console, and a failure's traceback
            text=True,
            check=False,
        )
        found = COUNTED.search(said.read_text()) if said.exists() else None
    if done.returncode or not found:
        raise RuntimeError(f"valgrind running {subject} failed: {done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure(fewer, more, cwd, workers=2):
    """Each subject's instructions per echo, and each endpoint's per traced record (compact over off)."""
    runs = [(subject, echoes) for subject in SUBJECTS for echoes in (fewer, more)]
    with ThreadPoolExecutor(workers) as pool:  # one valgrind per core
        counted = dict(zip(runs, pool.map(lambda run: instructions(*run, cwd), runs), strict=True))
    per_echo = {
        subject: (counted[subject, more] - counted[subject, fewer]) / (more - fewer) for subject in SUBJECTS
    }
    per_record = {kind: (per_echo[traced] - per_echo[off]) / RECORDS_PER_ECHO for kind, off, traced in PAIRS}
    return {"echoes": [fewer, more], "per_echo": per_echo, "per_record": per_record}


async def echo(subject, echoes):
    from channels.testing import WebsocketCommunicator

    from explorer.bench.app import SUBJECTS as APPS

    handler = logging.getLogger("explorer.trace").handlers[0]
    communicator = WebsocketCommunicator(APPS[subject], f"/bench/{subject}/")
    connected, _ = await communicator.connect()
    assert connected, subject
    for echoed in range(WARM_UP + echoes):
        if echoed == WARM_UP:
            # What the process holds so far (Django, the app, the connection), out of the collector's
            # sight: a full collection's walk over it is millions of instructions that fall in one run
            # and not in the other, and a step worth a few hundred would drown in them.
            gc.collect()
            gc.freeze()
        await communicator.send_to(text_data="hello")
        await communicator.receive_output()  # as sent: the bare consumers echo the event they got
    await communicator.disconnect()
    handler.flush()  # the listener's work for every record, counted


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m explorer.bench.instructions", description=__doc__)
    parser.add_argument("subject", choices=SUBJECTS)
    parser.add_argument("echoes", type=int)
    options = parser.parse_args(argv)
    import django

    django.setup()
    from explorer.trace import handlers

    handlers.BATCH_PAUSE *= SLOWER  # the listener's batches as large as in a real server's run
    asyncio.run(echo(options.subject, options.echoes))


if __name__ == "__main__":
    main()
