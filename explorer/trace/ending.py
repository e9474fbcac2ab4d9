"""The trace's end, however its process ends: its last lines handed on, its closing figures said.

A process that ends through the interpreter's own exit runs ``atexit``, and
the trace's end with it. Two servers end theirs otherwise:

- uvicorn shuts down, then raises SIGTERM again with its default action
  restored (``Server.capture_signals``): the signal ends the process where
  it stands, and ``atexit`` never runs;
- granian's workers are ``multiprocessing`` processes, which leave by
  ``os._exit`` once multiprocessing's own exit function has run.

So the end is registered three ways, and runs once: with ``atexit``, as a
multiprocessing finalizer, and, where SIGTERM would end the process at once,
as a SIGTERM handler that ends the trace and then lets the signal end the
process as it would have (the exit status is the same).
"""

import atexit
import contextlib
import multiprocessing.util
import signal
import threading

STOP_TIMEOUT = 15  # seconds a SIGTERM waits for the trace's end before the process ends anyway

ends = []  # what to run as the process ends, each once


def at_end(stop):
    """Runs ``stop`` once as the process ends, whichever way it ends."""
    ends.append(stop)


def end():
    """Runs every end not yet run: the first of ``atexit``, multiprocessing's exit and SIGTERM does."""
    while ends:
        ends.pop()()  # a pop: the second caller finds nothing left to run


def end_before_sigterm():
    """Where SIGTERM would end this process at once (its default action), ends the trace first.

    Called as a server builds its traced application (``handlers.warm_up``),
    so only a serving process gets the handler. A server that handles
    SIGTERM itself replaces it and, if it puts it back as uvicorn does,
    raises the signal again through it.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set a handler
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, end_then_terminate)


def end_then_terminate(signum, frame):
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    # On a thread of its own: the signal may have come while this thread held one of the trace's locks.
    ender = threading.Thread(target=end, name="explorer.trace end", daemon=True)
    ender.start()
    ender.join(STOP_TIMEOUT)
    signal.raise_signal(signum)


atexit.register(end)
multiprocessing.util.Finalize(None, end, exitpriority=0)
