"""Trace settings: defaults, environment overrides, and the system check for bad values."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]

PRINT_TRACE_SETTINGS = (
    "import json, django; django.setup(); "
    "from django.conf import settings; print(json.dumps(settings.EXPLORER_TRACE))"
)


def settings_with(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXPLORER_TRACE")}
    result = subprocess.run(
        [sys.executable, "-c", PRINT_TRACE_SETTINGS],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "explorer.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    return result


def test_defaults():
    result = settings_with()
    assert json.loads(result.stdout) == {
        "MODE": "compact",
        "MAX_PAYLOAD": 200,
        "SHOW_CREDENTIALS": False,
        "QUEUE_SIZE": 10_000,
        "SLOW_WAIT_MS": 50,
        "FILE": None,
    }


def test_environment_overrides_each_setting():
    result = settings_with(
        EXPLORER_TRACE="full",
        EXPLORER_TRACE_MAX_PAYLOAD="32",
        EXPLORER_TRACE_SHOW_CREDENTIALS="1",
        EXPLORER_TRACE_QUEUE_SIZE="50",
        EXPLORER_TRACE_SLOW_WAIT_MS="250",
        EXPLORER_TRACE_FILE="/tmp/trace.jsonl",
    )
    assert json.loads(result.stdout) == {
        "MODE": "full",
        "MAX_PAYLOAD": 32,
        "SHOW_CREDENTIALS": True,
        "QUEUE_SIZE": 50,
        "SLOW_WAIT_MS": 250,
        "FILE": "/tmp/trace.jsonl",
    }


def test_a_malformed_number_is_a_clear_error():
    result = settings_with(EXPLORER_TRACE_MAX_PAYLOAD="lots")
    assert result.returncode != 0
    assert "EXPLORER_TRACE_MAX_PAYLOAD='lots': expected a whole number" in result.stderr


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"MODE": "loud"}, "MODE is 'loud'; expected one of compact, full, off"),
        ({"MAX_PAYLOAD": 0}, "MAX_PAYLOAD is 0; expected a whole number of at least 1"),
        ({"QUEUE_SIZE": "big"}, "QUEUE_SIZE is 'big'"),
        ({"SLOW_WAIT_MS": -1}, "SLOW_WAIT_MS is -1; expected a whole number of at least 0"),
    ],
)
def test_system_check_reports_bad_trace_settings(options, problem):
    with override_settings(EXPLORER_TRACE=options):
        errors = [e for e in checks.run_checks() if e.id == "explorer.E001"]
    assert len(errors) == 1 and problem in errors[0].msg


def test_system_check_passes_the_defaults():
    assert not [e for e in checks.run_checks() if e.id == "explorer.E001"]


def test_daphne_comes_first_so_runserver_serves_asgi():
    from django.conf import settings

    assert settings.INSTALLED_APPS[0] == "daphne"
    assert settings.ASGI_APPLICATION == "explorer.asgi.application"
