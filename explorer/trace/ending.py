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

Not covered: a uvicorn worker under ``--workers`` or ``--reload`` builds the
application once uvicorn already handles SIGTERM, so no handler is set
there, and it too ends by the signal; its closing figures are not said.
"""

import atexit
import contextlib
import multiprocessing.util
import os
import signal
import sys
import threading

ends = []  # what to run as the process ends, each once


def at_end(stop):
    """Runs ``stop`` once as the process ends, whichever way it ends."""
    ends.append(stop)


def end():
    """Runs every end not yet run: the first of ``atexit``, multiprocessing's exit and SIGTERM does.
    One that fails does not keep the others from running."""
    while ends:
        stop = ends.pop()  # a pop: a second caller finds nothing left to run
        try:
            stop()
        except Exception as error:
            with contextlib.suppress(Exception):  # stderr may be what failed
                sys.__stderr__.write(
                    f"explorer.trace: the trace's end failed ({type(error).__name__}: {error})\n"
                )


def end_before_sigterm():
    """Where SIGTERM would end this process at once (its default action), ends the trace first.

    Called where a process builds a traced application (``handlers.warm_up``):
    a server, a test. A server that handles SIGTERM itself replaces the
    handler and, if it puts it back as uvicorn does, raises the signal again
    through it.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set a handler
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, end_then_terminate)


def end_then_terminate(signum, frame):
    """Returns at once: the signal may have come while this thread held a lock the end needs. A thread
    of its own ends the trace, then ends the process by the signal, as its default action would have."""
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    try:
        threading.Thread(target=end_then_kill, args=(signum,), name="explorer.trace end").start()
    except RuntimeError:  # no new thread at interpreter shutdown: the signal ends the process now
        signal.raise_signal(signum)


def end_then_kill(signum):
    try:
        end()
    finally:
        os.kill(os.getpid(), signum)


def finalize_at_exit():
    """The end as a multiprocessing finalizer: a multiprocessing child runs them before ``os._exit``."""
    multiprocessing.util.Finalize(None, end, exitpriority=0)


atexit.register(end)
finalize_at_exit()
# A multiprocessing child clears the finalizers it inherited from a forking parent: registered again.
multiprocessing.util.register_after_fork(end, lambda _: finalize_at_exit())
