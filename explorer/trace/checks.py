"""System checks: a mistyped trace setting is reported when the server starts, not at the first connection."""

from django.conf import settings
from django.core.checks import Error, register

from explorer.trace.config import problems


@register()
def check_trace_settings(app_configs, **kwargs):
    return [
        Error(
            f"EXPLORER_TRACE: {problem}", hint="See explorer/settings.py or the README.", id="explorer.E001"
        )
        for problem in problems(getattr(settings, "EXPLORER_TRACE", {}))
    ]
