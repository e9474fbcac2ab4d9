"""An application's exception as the trace tells it: the consumer's own frames, the plumbing folded.

Between the server and a handler lie a dozen frames of channels, asgiref
and the trace itself; a ``/raise`` printed about forty lines, and the
server then logged the same forty again. Compact mode keeps the frames of
the code that raised and says how many plumbing frames it left out, and
where the server is known to log the whole traceback itself, the trace says
so instead of printing its copy (``render``). Full mode keeps every frame.
"""

import asyncio
import concurrent.futures
import os
import threading
import traceback
from dataclasses import dataclass
from typing import Any

import asgiref
import channels
from rich.traceback import Traceback

from explorer.trace.display import printable

# Where the plumbing lives, with the name a folded run of its frames is given.
PLUMBING = {
    os.path.dirname(str(module.__file__)) + os.sep: module.__name__
    for module in (asgiref, asyncio, channels, concurrent.futures)
}
HERE = os.path.dirname(__file__)
PLUMBING[HERE + os.sep] = "explorer.trace"
PLUMBING[os.path.join(os.path.dirname(HERE), "origin.py")] = "explorer.origin"  # the page's own check
PLUMBING[threading.__file__] = threading.__name__


def plumbing(frame):
    """The package a frame belongs to, when it is plumbing, else None."""
    return next((name for place, name in PLUMBING.items() if frame.filename.startswith(place)), None)


class FoldedStack(traceback.StackSummary):
    """A stack that prints a run of plumbing frames as one line saying what it left out."""

    def format(self):
        lines, run = [], []
        for frame in self:
            package = plumbing(frame)
            if package:
                run.append(package)
                continue
            lines += folded_run(run)
            run = []
            lines.append(self.format_frame_summary(frame))
        return lines + folded_run(run)


def folded_run(packages):
    if not packages:
        return []
    names = ", ".join(dict.fromkeys(packages))
    frames = f"{len(packages)} frame{'s' if len(packages) != 1 else ''}"
    return [f"  … {frames} of {names}\n"]


def fold(exception, seen):
    """Folds the stacks of ``exception`` and of the exceptions it was raised from, in place."""
    if exception is None or id(exception) in seen:
        return
    seen.add(id(exception))
    exception.stack = FoldedStack(exception.stack)
    fold(exception.__cause__, seen)
    fold(exception.__context__, seen)


def raised_at(exc_info):
    """Where the exception was raised, in the application's own code: ``consumers/x.py:83 (perform)``."""
    frames = traceback.extract_tb(exc_info[2])
    own = [frame for frame in frames if not plumbing(frame)] or frames
    if not own:
        return None
    frame = own[-1]
    place = os.path.relpath(frame.filename)
    if place.startswith(os.pardir):  # outside the project: the whole path says more
        place = frame.filename
    return f"{place}:{frame.lineno} ({frame.name})"


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception as the trace shows it, made once, where it was raised.

    A traceback cannot leave its process, and every sink (console, recording,
    page) shows the same: the text in the entry's mode, and for full mode
    Rich's own extraction of the frames.
    """

    text: str
    trace: Any = None  # full mode: rich.traceback.Trace


def failure(exc_info, mode="compact"):
    """``exc_info`` as a Failure in ``mode``, or None: compact mode folds the plumbing, full keeps it."""
    if not exc_info:
        return None
    exception = traceback.TracebackException(*exc_info)
    trace = None
    if mode == "full":
        trace = Traceback.extract(*exc_info)
        for stack in trace.stacks:  # what the exception says is shown, never interpreted
            stack.exc_type = printable(stack.exc_type)
            stack.exc_value = printable(stack.exc_value)
    else:
        fold(exception, set())
    return Failure("".join(exception.format()).rstrip("\n"), trace)


def failure_of(record):
    """A logging record's Failure (made once, and kept on it for the other sinks), or None."""
    made = getattr(record, "trace_failure", None)
    if made is None and record.exc_info:
        entry = getattr(record, "trace", None)
        made = failure(record.exc_info, getattr(getattr(entry, "config", None), "mode", "compact"))
        record.trace_failure = made
    return made
