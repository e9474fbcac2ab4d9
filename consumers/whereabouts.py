"""Where a handler is running, as ``/whoami`` reports it.

The core cannot know this (it does no I/O and has no threads), so the
consumer asks here from inside its handler and hands the answer to the core.
"""

import asyncio
import threading


def on_event_loop_thread():
    """Whether this thread is running an asyncio event loop (a sync handler's is not)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def whereabouts(consumer):
    """Consumer class, thread, whether it is the event loop's, and the channel name."""
    kind = next(base.__name__ for base in type(consumer).__mro__ if base.__module__ == "channels.consumer")
    return {
        "consumer": f"{type(consumer).__module__}.{type(consumer).__qualname__}",
        "kind": kind,
        "thread": threading.current_thread().name,
        "event_loop_thread": on_event_loop_thread(),
        # channels sets channel_name only when a channel layer is configured.
        "channel_name": getattr(consumer, "channel_name", None),
    }
