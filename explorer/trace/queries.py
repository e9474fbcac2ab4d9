"""The SQL a handler runs: each statement timed on the thread it ran on, and the connection it used.

Django offers one documented place to see every statement a connection
executes: its ``execute_wrappers`` (``connection.execute_wrapper``). The
trace puts ``traced_query`` first in that list on each connection as it is
made (``connection_created``), for the connection's whole life, since an
async consumer's queries run on the sync thread, in ``sync_to_async``,
where no ``with`` block of the consumer's reaches. Outside a traced
connection it costs one context-variable lookup. Parameters are never kept:
the statement is shown with its placeholders, and a failed one's message only
when it had none (``failure``).

Connections are per thread in Django, so what this thread last opened
tells whether a statement reused a connection or opened one, and whether
the one before was closed in between: channels' ``close_old_connections()``,
run before every handler, closes a connection older than ``CONN_MAX_AGE``.
"""

import re
import threading
import time

from django.db import connections
from django.db.backends.signals import connection_created

from explorer.trace import connection as traced  # a cycle: each module uses the other only when called
from explorer.trace.display import printable
from explorer.trace.entry import duration

MAX_ERROR = 200  # characters of a failed statement's message
MAX_SQL = 160  # characters of a statement shown: enough to tell one query from another
MAX_COLUMNS = 40  # characters of a SELECT's column list shown whole; a longer one is folded after the first
SPACES = re.compile(r"\s+")
SELECTED = re.compile(r"SELECT (?P<columns>(?P<first>[^,]+),.*?) FROM ", re.IGNORECASE)
opened_here = threading.local()  # alias -> (when this thread's connection opened, the one before's age)


def traced_query(execute, sql, params, many, context):
    """An execute wrapper: the statement goes through untouched; a traced connection is told of it."""
    trace = traced.current.get()
    if trace is None or not trace.enabled:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        result = execute(sql, params, many, context)
    except Exception as error:
        why = failure(error, bound=bool(params))
        trace.query_ran(context["connection"], sql, many, started, time.perf_counter(), why)
        raise
    trace.query_ran(context["connection"], sql, many, started, time.perf_counter())
    return result


def failure(error, bound):
    """What the trace says of a statement that raised: its class and the database's code, and its
    message only when the statement had no parameters, since a database's message can quote them
    (PostgreSQL's: 'invalid input syntax for type integer: "..."')."""
    cause = error.__cause__
    code = getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorname", None)
    name = type(error).__name__ + (f" [{printable(str(code))}]" if code else "")
    if bound:
        return f"{name} (its message is not shown: it may quote the statement's parameters)"
    return f"{name}: {printable(str(error))[:MAX_ERROR]}"


def connection_made(sender, connection, **kwargs):
    """A new database connection on this thread: wrap its statements, and remember when it opened."""
    if traced_query not in connection.execute_wrappers:
        # First, not last: Django's own ``execute_wrapper`` blocks pop the last one on leaving.
        connection.execute_wrappers.insert(0, traced_query)
    now = time.perf_counter()
    known = vars(opened_here)
    before = known.get(connection.alias)
    known[connection.alias] = (now, None if before is None else now - before[0], True)


def install():
    connection_created.connect(connection_made, dispatch_uid="explorer.trace.queries")
    for connection in connections.all(initialized_only=True):  # made before the app was ready
        if connection.connection is not None and traced_query not in connection.execute_wrappers:
            connection.execute_wrappers.insert(0, traced_query)


def shortened(sql):
    """A statement on one line, its column list folded, cut to ``MAX_SQL`` characters, printable."""
    text = SPACES.sub(" ", str(sql)).strip()
    columns = SELECTED.match(text)
    if columns and len(columns["columns"]) > MAX_COLUMNS:
        text = f"SELECT {columns['first']}, … {text[columns.end('columns') + 1 :]}"
    text = printable(text)
    return text if len(text) <= MAX_SQL else text[: MAX_SQL - 1] + "…"


def connection_state(connection):
    """How the statement's connection came to be: reused, or opened, and why the one before is gone."""
    known = vars(opened_here)
    opened = known.get(connection.alias)
    if opened is None:
        return "reused"
    since, age_of_previous, fresh = opened
    if not fresh:
        return f"reused, opened {duration(time.perf_counter() - since)} ago"
    known[connection.alias] = (since, age_of_previous, False)
    if age_of_previous is None:
        return "opened"
    max_age = connection.settings_dict.get("CONN_MAX_AGE", 0)
    earlier = f"opened {duration(age_of_previous)} earlier"
    if max_age is not None and age_of_previous >= max_age:
        # What channels does, not what the trace saw: another caller of close() is not told apart.
        return (
            f"opened: this thread's last ({earlier}) was closed, as channels' close_old_connections() "
            f"does around each handler once CONN_MAX_AGE={max_age} s has passed"
        )
    return f"opened: this thread's last ({earlier}) was closed: it broke, or code closed it"
