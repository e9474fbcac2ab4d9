"""Where a handler is running, as ``/whoami`` reports it, and the process's figures, for ``/stats``.

The core cannot know these (it does no I/O and has no threads), so the
consumer asks here from inside its handler and hands the answer to the core.
"""

import asyncio
import os
import resource
import threading
from pathlib import Path
from typing import Any

from channels.consumer import AsyncConsumer


def on_event_loop_thread() -> bool:
    """Whether this thread is running an asyncio event loop (a sync handler's is not)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def whereabouts(consumer: AsyncConsumer) -> dict[str, Any]:
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


def status_kib(lines: list[str], key: str) -> int | None:
    return next((int(line.split()[1]) for line in lines if line.startswith(key)), None)


async def process_stats() -> dict[str, int | None]:
    """The server process's figures, read on its event loop (a sync consumer hops there to ask)."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    rss_kib = status_kib(lines, "VmRSS:")
    fd_dir = Path("/proc/self/fd")
    return {
        "asyncio_tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        "open_files": len(os.listdir(fd_dir)) if fd_dir.exists() else None,
        "rss_kib": rss_kib,
        # VmHWM, from the same reading as VmRSS: getrusage's ru_maxrss can lag behind it.
        "peak_rss_kib": status_kib(lines, "VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
