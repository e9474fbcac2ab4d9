"""The trace's settings: ``settings.EXPLORER_TRACE``, each key overridable by an environment variable.

One table says every key, its variable, its default and what it accepts;
``read_settings`` checks them all and says what is wrong in a sentence that
names the variable. The ``explorer.trace`` app stops start-up on a bad value
(``apps.py``), wherever the app starts: runserver, daphne, uvicorn...
"""

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

MODES = ("compact", "full", "off")
CLOCKS = ("process", "connection", "wall")  # the time column: see entry.clock
RENDERERS = ("process", "thread")  # where records are made readable and written: renderer.py
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
MIB = 1024 * 1024
# Header and query parameter names that mean a credential (searched, case-insensitive).
CREDENTIALS = r"token|key|secret|pass|pwd|auth|session|sig|cookie|csrf|bearer|credential|jwt|otp"
# Subprotocol entries that carry a credential: the first group is kept, the rest redacted.
CREDENTIAL_SUBPROTOCOLS = (
    r"(base64url\.bearer\.authorization\.k8s\.io\.).+",  # Kubernetes' bearer token subprotocol
    r"((?:access[-_.]?token|bearer|token|auth)[-_.,:=])\S+",
)


class SettingError(ValueError):
    """A setting's value that the trace cannot take; the text names it and what it accepts."""


def whole(low, high):
    def parse(value):
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value, re.ASCII):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingError(f"a whole number from {low:,} to {high:,}")
        return value

    return parse


def one_of(choices):
    def parse(value):
        if value not in choices:
            raise SettingError(f"one of {', '.join(choices)}")
        return value

    return parse


def flag(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
        return value.lower() in TRUE_WORDS
    raise SettingError("1/0, true/false, yes/no or on/off")


def recording_file(value):
    if value in (None, ""):
        return None
    path = Path(value)
    if path.is_dir():
        raise SettingError("a file to append to, not a directory")
    if not path.parent.is_dir():
        raise SettingError(f"a file in a directory that exists ({path.parent} does not)")
    return str(path)


def patterns(value):
    if isinstance(value, str):
        value = [value]
    try:
        return tuple(re.compile(pattern, re.IGNORECASE) for pattern in value)
    except (TypeError, re.error) as error:
        raise SettingError(f"regular expressions ({error})") from None


# key: (environment variable, default, parser)
SETTINGS = {
    "MODE": ("EXPLORER_TRACE", "compact", one_of(MODES)),
    "MAX_PAYLOAD": ("EXPLORER_TRACE_MAX_PAYLOAD", 200, whole(1, 1_000_000)),
    "SHOW_CREDENTIALS": ("EXPLORER_TRACE_SHOW_CREDENTIALS", False, flag),
    "SLOW_WAIT_MS": ("EXPLORER_TRACE_SLOW_WAIT_MS", 50, whole(0, 600_000)),
    "FILE": ("EXPLORER_TRACE_FILE", None, recording_file),
    "CLOCK": ("EXPLORER_TRACE_CLOCK", "process", one_of(CLOCKS)),
    "RENDERER": ("EXPLORER_TRACE_RENDERER", "process", one_of(RENDERERS)),
    "QUEUE_SIZE": ("EXPLORER_TRACE_QUEUE_SIZE", 10_000, whole(1, 1_000_000)),
    "QUEUE_BYTES": ("EXPLORER_TRACE_QUEUE_BYTES", 64 * MIB, whole(MIB, 4096 * MIB)),
    "CREDENTIALS": (None, (CREDENTIALS,), patterns),
    "CREDENTIAL_SUBPROTOCOLS": (None, CREDENTIAL_SUBPROTOCOLS, patterns),
}


@dataclass(frozen=True, slots=True)
class TraceConfig:
    """What the trace needs to know on the consumer's path and to show an entry."""

    mode: str = "compact"
    max_payload: int = 200
    show_credentials: bool = False
    slow_wait: float = 0.05  # seconds an event may wait for its handler before it is flagged
    clock: str = "process"
    credentials: tuple = field(default_factory=lambda: patterns(CREDENTIALS))
    credential_subprotocols: tuple = field(default_factory=lambda: patterns(CREDENTIAL_SUBPROTOCOLS))

    @property
    def enabled(self):
        return self.mode != "off"


def read_settings():
    """(every setting, parsed; the problems found), from EXPLORER_TRACE and the environment."""
    options = getattr(settings, "EXPLORER_TRACE", {})
    values, problems = {}, []
    if not isinstance(options, dict):
        return {}, [f"EXPLORER_TRACE is a {type(options).__name__}; expected a dict"]
    for key in options:
        if key not in SETTINGS:
            problems.append(f"EXPLORER_TRACE has no setting {key!r}; it has {', '.join(SETTINGS)}")
    for key, (variable, default, parse) in SETTINGS.items():
        if variable and os.environ.get(variable) not in (None, ""):
            raw, where = os.environ[variable], variable
        else:
            raw, where = options.get(key, default), f"EXPLORER_TRACE[{key!r}]"
        try:
            values[key] = parse(raw)
        except SettingError as error:
            problems.append(f"{where}={raw!r}: expected {error}")
    return values, problems


@cache
def trace_settings():
    values, problems = read_settings()
    if problems:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("; ".join(problems))
    return values


@cache
def trace_config():
    values = trace_settings()
    return TraceConfig(
        mode=values["MODE"],
        max_payload=values["MAX_PAYLOAD"],
        show_credentials=values["SHOW_CREDENTIALS"],
        slow_wait=values["SLOW_WAIT_MS"] / 1000,
        clock=values["CLOCK"],
        credentials=values["CREDENTIALS"],
        credential_subprotocols=values["CREDENTIAL_SUBPROTOCOLS"],
    )


@receiver(setting_changed)
def forget_config(setting, **kwargs):
    if setting == "EXPLORER_TRACE":
        trace_settings.cache_clear()
        trace_config.cache_clear()
