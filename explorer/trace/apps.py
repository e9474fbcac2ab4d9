"""The ``explorer.trace`` app: the dispatch hook, and the console and recording unless LOGGING has its own."""

import logging

from django.apps import AppConfig
from django.conf import settings


class TraceAppConfig(AppConfig):
    name = "explorer.trace"
    label = "explorer_trace"
    verbose_name = "ASGI WebSocket trace"

    def ready(self):
        from explorer.trace import checks, dispatch  # noqa: F401 - checks registers the system checks

        dispatch.install()
        attach_default_handler()


def attach_default_handler():
    """The trace's own handler on the ``explorer.trace`` logger, unless LOGGING configured that logger.

    Django applies LOGGING before apps are ready, so a project that routes or
    silences the logger (a handler, a level, or disabling it) keeps its choice.
    """
    logger = logging.getLogger("explorer.trace")
    if logger.handlers or logger.level != logging.NOTSET or logger.disabled:
        return
    from explorer.trace.handlers import QueuedTraceHandler

    options = getattr(settings, "EXPLORER_TRACE", {})
    logger.addHandler(
        QueuedTraceHandler(queue_size=options.get("QUEUE_SIZE", 10_000), file=options.get("FILE") or None)
    )
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the trace has its own console; not twice through the root's
