"""The trace's end runs however the process ends (``explorer/trace/ending.py``).

Each test runs a small program in a process of its own: the end it tests is
the process's own, and ending the test runner's trace would end it for
every later test.
"""

import os
import signal
import subprocess
import sys

from tests.conftest import ROOT

PREAMBLE = """
import logging, os, signal, sys, threading, time
import django
django.setup()
from explorer.trace import ending
"""


def run(program, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", PREAMBLE + program],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "explorer.settings", "EXPLORER_TRACE": "compact"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_sigterm_that_comes_while_the_trace_holds_its_lock_still_ends_the_trace_then_the_process():
    """The handler returns at once and a thread of its own ends the trace: had it waited there, the end
    would have waited for the lock this thread held, and been cut short."""
    result = run(
        """
from explorer.asgi import application  # builds TraceMiddleware: the handler is set
logging.getLogger("explorer.trace").info("a line")  # the queue's listener runs: its end takes the lock
handler = logging.getLogger("explorer.trace").handlers[0]
ending.ends.insert(0, lambda: print("ended", flush=True))  # the last to run: after the queue's end
with handler.counting:  # as inside a record's enqueue
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
time.sleep(30)  # the end's thread ends the process by the signal before this is over
print("not ended", flush=True)
"""
    )
    assert result.returncode == -signal.SIGTERM, result.stderr[-2000:]
    assert result.stdout.split() == ["ended"]


def test_a_process_that_handles_sigterm_itself_keeps_its_handler():
    """Only SIGTERM's default action is replaced: a server's own handler stays."""
    result = run(
        """
signal.signal(signal.SIGTERM, lambda *_: print("its own", flush=True))
from explorer.asgi import application
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
"""
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["its", "own"]


def test_a_multiprocessing_child_forked_after_the_trace_started_still_runs_its_end():
    """A multiprocessing child leaves by os._exit, after the finalizers, which it cleared as it started."""
    result = run(
        """
import multiprocessing
def child():
    ending.at_end(lambda: print("the child's end ran", flush=True))
process = multiprocessing.get_context("fork").Process(target=child)
process.start()
process.join(30)
print("exit code", process.exitcode, flush=True)
"""
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the child's end ran" in result.stdout
    assert result.stdout.count("ran") == 1  # the parent's end is its own


def test_one_end_that_fails_does_not_keep_the_others_from_running():
    result = run(
        """
ending.at_end(lambda: print("first ran", flush=True))
ending.at_end(lambda: 1 / 0)
"""
    )
    assert result.returncode == 0
    assert "first ran" in result.stdout
    assert "the trace's end failed (ZeroDivisionError" in result.stderr


def test_a_forked_child_does_not_say_its_parents_open_connections_or_pauses():
    result = run(
        """
import gc
from explorer.trace.config import trace_config
from explorer.trace.connection import ConnectionTrace, open_traces
from explorer.trace.pauses import pauses
trace = ConnectionTrace({"type": "websocket", "path": "/ws/ac/"}, trace_config())
gc.collect()
assert len(open_traces) == 1 and pauses.count >= 1
pid = os.fork()
if pid == 0:
    os._exit(0 if len(open_traces) == 0 and pauses.count == 0 else 1)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), "parent", len(open_traces), flush=True)
"""
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["child", "0", "parent", "1"]
