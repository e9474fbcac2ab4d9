"""The trace's settings, read from ``settings.EXPLORER_TRACE`` once and again after a change."""

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

MODES = ("compact", "full", "off")


@dataclass(frozen=True, slots=True)
class TraceConfig:
    mode: str = "compact"
    max_payload: int = 200
    show_credentials: bool = False
    slow_wait: float = 0.05  # seconds an event may wait for its handler before it is flagged

    @property
    def enabled(self):
        return self.mode != "off"


def problems(options):
    """What is wrong with an EXPLORER_TRACE dict, as sentences (for the system check)."""
    found = []
    mode = options.get("MODE", "compact")
    if mode not in MODES:
        found.append(f"MODE is {mode!r}; expected one of {', '.join(MODES)}")
    for key, low in (("MAX_PAYLOAD", 1), ("QUEUE_SIZE", 1), ("SLOW_WAIT_MS", 0)):
        value = options.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            found.append(f"{key} is {value!r}; expected a whole number of at least {low}")
    return found


@cache
def trace_config():
    options = getattr(settings, "EXPLORER_TRACE", {})
    mode = options.get("MODE", "compact")
    return TraceConfig(
        mode=mode if mode in MODES else "compact",  # the system check reports it
        max_payload=options.get("MAX_PAYLOAD", 200),
        show_credentials=bool(options.get("SHOW_CREDENTIALS", False)),
        slow_wait=options.get("SLOW_WAIT_MS", 50) / 1000,
    )


@receiver(setting_changed)
def forget_config(setting, **kwargs):
    if setting == "EXPLORER_TRACE":
        trace_config.cache_clear()
