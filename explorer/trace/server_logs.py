"""What a server itself logs of a connection, with its credentials hidden as the trace hides them.

uvicorn logs each WebSocket handshake and HTTP request with its path and
query string (``127.0.0.1:5 - "WebSocket /ws/sc/?token=..." [accepted]``, on
``uvicorn.error``; requests on ``uvicorn.access``): a token in the query
would reach the console the trace keeps it out of. A filter on those
loggers hides a credential parameter's value in any argument that holds a
path with a query, by the trace's own rule (``redaction.query_string``).
"""

import logging

from explorer import redaction
from explorer.trace.config import trace_config

LOGGERS = ("uvicorn.error", "uvicorn.access")


class HiddenQueryCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, str) and "?" in arg for arg in record.args):
            record.args = tuple(hidden(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def hidden(text: str) -> str:
    """A path with its query string's credential parameters hidden (anything else as it was)."""
    config = trace_config()
    path, mark, query = text.partition("?")
    if not mark or config.show_credentials:
        return text
    raw = query.encode("utf-8", "surrogatepass")
    return path + mark + redaction.query_string(raw, config).decode("utf-8", "surrogatepass")


def install() -> None:
    """Once per logger: a server configures its logging before it loads the application."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(each, HiddenQueryCredentials) for each in logger.filters):
            logger.addFilter(HiddenQueryCredentials())
