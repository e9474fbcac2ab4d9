"""What one trace line says: the record both halves of the trace share.

The consumer's side (``connection``) makes entries; the listener's side
(``render``, ``recording``, ``replay``) reads them, and never needs the other.
"""

import functools
import operator
import os
import threading
import time
from dataclasses import dataclass, fields
from typing import Any

from explorer.trace.config import TraceConfig

KINDS = ("server", "scope", "in", "out", "layer", "query", "done", "note", "error", "exit")
OUTCOMES = ("raised", "cancelled")  # a done line's, when its handler did not return


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule one event broke: its id, what exactly is wrong, and a hint."""

    rule: str
    problem: str
    hint: str = ""


@dataclass(slots=True)
class TraceEntry:
    """One line of the trace. ``kind`` is one of ``KINDS``.

    Not frozen, though nothing changes one once made: a frozen dataclass sets
    each field through ``object.__setattr__``, and one is made per event.
    """

    connection: str  # Name#N: the consumer's class (or trace_name), else the path, and a number
    kind: str
    seconds: float  # since the connection arrived
    event: Any
    config: TraceConfig
    thread: str | None = None
    note: str | None = None
    wait: float | None = None  # in: from arrival to its handler's start
    handler: float | None = None  # done: the handler's own time
    slow: bool = False  # the wait reached config.slow_wait
    violations: tuple[Violation, ...] = ()
    notes: tuple[str, ...] = ()  # what the server does differently, or why the event waited
    consumer: str | None = None  # scope: the consumer's dotted class path, when one ran
    recorded: bool = False  # read back from a file: the event is already as shown
    at: float = 0.0  # the wall clock (time.time()) of ``seconds``
    # The wall clock when the trace made the line: later than ``at`` for an event that waited for its
    # handler (the line needs the handler's thread). The console's own lag is measured from it.
    made: float = 0.0
    started: float = 0.0  # when this process's trace started (time.time()): the process clock's zero
    # Where the page's timeline links and marks (panel, export): structured, not read from notes.
    held_by: tuple[str, ...] | None = None  # in, layer: whose handlers held the thread it waited for
    on_loop: bool | None = None  # done: the handler ran on the event loop's thread
    held_loop: tuple[float, float] | None = None  # done: (start in seconds, length) of its hold of the loop
    outcome: str | None = None  # done: "raised" or "cancelled" when the handler did not return
    server_logs_traceback: bool = False  # error: the server prints the whole traceback itself
    took: float | None = None  # query: the statement's own time
    queries: tuple[int, float] | None = None  # done: how many statements the handler ran, in how long

    def __reduce__(self):
        # A tuple of the fields, made back with one call: the dataclass's own pickling sets
        # each field in Python, at both ends, and the renderer process takes every record so.
        return (TraceEntry, values_of(self))

    @property
    def endpoint(self) -> str:
        """The name part of ``connection``: ``sc``, ``ChatConsumer``, ``/ws/chat/``."""
        return self.connection.rpartition("#")[0]


FIELDS = tuple(field.name for field in fields(TraceEntry))
values_of = operator.attrgetter(*FIELDS)  # an entry's fields as a tuple, in order
EVENT, CONFIG = FIELDS.index("event"), FIELDS.index("config")

# The consumer's path queues an entry's values (``connection.ConnectionTrace.emit``) holding plain values,
# nothing the garbage collector follows: not its config (it goes by its number in ``CONFIGS``, every config
# this process's trace has made lines with), nor its event, a dict, nor a tuple of the event's items (a
# collection lets go of a tuple only once it has let go of the tuples in it, and it comes to those last).
# A dict event's keys and values go after the fields, in turn, and the config's number is then
# ``-1 - number``. A line waits for the listener's next batch long enough to be carried into the oldest
# generation if the collector follows it, and each line so carried brought the process's next full
# collection (tens of milliseconds, every thread stopped) that much closer.
CONFIGS: list[TraceConfig] = []
numbers: dict[TraceConfig, int] = {}
numbering = threading.Lock()


def config_number(config: TraceConfig) -> int:
    """``config``'s number in ``CONFIGS``: asked once per connection."""
    with numbering:
        if config not in numbers:
            numbers[config] = len(CONFIGS)
            CONFIGS.append(config)
        return numbers[config]


def known_configs(first: int, configs: list[TraceConfig]) -> None:
    """Configs numbered from ``first`` in another process (the server's, for its renderer process), which
    sends each once, in order, to the process it started."""
    with numbering:
        if first > len(CONFIGS):
            raise ValueError(f"configs from number {first} sent, but only {len(CONFIGS)} known before them")
        CONFIGS[first : first + len(configs)] = configs


def forked() -> None:
    """A lock another thread held at a fork stays held in the child: a new one."""
    global numbering
    numbering = threading.Lock()


os.register_at_fork(after_in_child=forked)


def entry_of(values: tuple) -> TraceEntry:
    """An entry from its values as the consumer's path queued them, or as ``values_of`` gives them."""
    number = values[CONFIG]
    if type(number) is not int:
        return TraceEntry(*values)
    event = values[EVENT]
    if number < 0:
        items = values[len(FIELDS) :]
        event, number = dict(zip(items[::2], items[1::2], strict=True)), -1 - number
    return TraceEntry(*(*values[:EVENT], event, CONFIGS[number], *values[CONFIG + 1 : len(FIELDS)]))


DATA = frozenset({str, bytes, int, float, bool, type(None)})


def only_data(value, depth=0):
    """Whether ``value`` holds nothing but Python's own data types, so it crosses the pipe as it is and
    the renderer lays it out; a scope that holds the application's objects (a user, a session) is laid
    out here instead, as they are now. (Asked of each scope line's values: a plain value is checked
    where it is found, with no call of its own.)"""
    kind = type(value)
    if kind in DATA:
        return True
    if depth > 3:
        return False
    if kind is dict:
        for key, each in value.items():
            if type(key) is not str or (type(each) not in DATA and not only_data(each, depth + 1)):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(each) in DATA or only_data(each, depth + 1) for each in value)
    return False


def clock(entry: "TraceEntry", which: str) -> str:
    """The time column of a line: since the process's trace started (lines from every connection in
    one order), since the connection arrived, or the wall clock."""
    if which == "wall" and entry.at:
        moment = time.localtime(entry.at)
        return f"{time.strftime('%H:%M:%S', moment)}.{int(entry.at % 1 * 1000):03d}"
    if which == "process" and entry.at and entry.started:
        # To the microsecond, as a recording keeps both moments: a replay then prints the same digits.
        return f"{round(entry.at, 6) - to_the_microsecond(entry.started):8.3f}s"
    return f"{entry.seconds:8.3f}s"


@functools.lru_cache(maxsize=16)
def to_the_microsecond(started: float) -> float:
    """``round(started, 6)``, kept: a process's trace has one start, and rounding a float to some digits
    is a decimal conversion, a tenth of a line's work when asked for each."""
    return round(started, 6)


def duration(seconds: float) -> str:
    """A short human reading of a duration: 1.902s, 12.3ms, 210µs."""
    if seconds >= 1:
        return f"{seconds:.3f}s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds * 1_000_000:.0f}µs"
