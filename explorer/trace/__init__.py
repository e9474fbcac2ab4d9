"""The trace: every ASGI event dict and scope, as it crosses, on the console.

Consumers build a ``logging`` record per event on the ``explorer.trace``
logger (``connection``); a queue hands it to a listener thread (``handlers``)
that turns it into something safe to show (``display``) and renders it with
Rich (``render``). ``LOGGING`` routes or silences it like any other logger.
"""
