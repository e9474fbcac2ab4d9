"""The ``explorer.trace`` app: the dispatch hook, the console and recording unless LOGGING has its own, and
the credentials in a query string kept out of the server's own log (``server_logs``)."""

import logging
import sys

from django.apps import AppConfig


class TraceAppConfig(AppConfig):
    name = "explorer.trace"
    label = "explorer_trace"
    verbose_name = "ASGI WebSocket trace"

    def ready(self):
        from explorer.trace import dispatch, pauses, queries, server_logs
        from explorer.trace.config import read_settings

        _, problems = read_settings()
        if problems:
            # One clear line, wherever the app starts (runserver, daphne, uvicorn...), not a traceback.
            sys.stderr.write("".join(f"explorer.trace: {problem}\n" for problem in problems))
            raise SystemExit(2)
        dispatch.install()
        queries.install()
        pauses.install()
        server_logs.install()
        attach_default_handler()


def attach_default_handler():
    """The trace's own handler on the ``explorer.trace`` logger, unless LOGGING configured that logger.

    Django applies LOGGING before apps are ready, so a project that routes or
    silences the logger (a handler, a level, or disabling it) keeps its choice.
    """
    logger = logging.getLogger("explorer.trace")
    if logger.handlers or logger.level != logging.NOTSET or logger.disabled:
        return
    from explorer.trace.config import trace_settings
    from explorer.trace.handlers import QueuedTraceHandler

    values = trace_settings()
    handler = QueuedTraceHandler(
        queue_size=values["QUEUE_SIZE"],
        queue_bytes=values["QUEUE_BYTES"],
        file=values["FILE"],
        renderer=values["RENDERER"],
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the trace has its own console; not twice through the root's
