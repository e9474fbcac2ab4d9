"""Trace settings: defaults, environment overrides, and a bad value stopping start-up with one clear line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from explorer.trace.config import MIB, read_settings, trace_config

ROOT = Path(__file__).resolve().parents[2]

PRINT_TRACE_SETTINGS = (
    "import json, django; django.setup(); from explorer.trace.config import trace_settings; "
    "values = trace_settings(); "
    "print(json.dumps({k: v for k, v in values.items() if not k.startswith('CREDENTIAL')}))"
)


def started_with(code=PRINT_TRACE_SETTINGS, command=None, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXPLORER_TRACE")}
    return subprocess.run(
        command or [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "explorer.settings", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_defaults():
    result = started_with()
    assert json.loads(result.stdout) == {
        "MODE": "compact",
        "MAX_PAYLOAD": 200,
        "SHOW_CREDENTIALS": False,
        "QUEUE_SIZE": 10_000,
        "QUEUE_BYTES": 64 * MIB,
        "SLOW_WAIT_MS": 50,
        "FILE": None,
        "CLOCK": "process",
        "RENDERER": "process",
    }


def test_environment_overrides_each_setting(tmp_path):
    result = started_with(
        EXPLORER_TRACE="full",
        EXPLORER_TRACE_MAX_PAYLOAD="32",
        EXPLORER_TRACE_SHOW_CREDENTIALS="1",
        EXPLORER_TRACE_QUEUE_SIZE="50",
        EXPLORER_TRACE_QUEUE_BYTES=str(2 * MIB),
        EXPLORER_TRACE_SLOW_WAIT_MS="250",
        EXPLORER_TRACE_FILE=str(tmp_path / "trace.jsonl"),
        EXPLORER_TRACE_CLOCK="wall",
        EXPLORER_TRACE_RENDERER="thread",
    )
    assert json.loads(result.stdout) == {
        "MODE": "full",
        "MAX_PAYLOAD": 32,
        "SHOW_CREDENTIALS": True,
        "QUEUE_SIZE": 50,
        "QUEUE_BYTES": 2 * MIB,
        "SLOW_WAIT_MS": 250,
        "FILE": str(tmp_path / "trace.jsonl"),
        "CLOCK": "wall",
        "RENDERER": "thread",
    }


BAD = [
    ({"EXPLORER_TRACE_RENDERER": "gpu"}, "EXPLORER_TRACE_RENDERER='gpu': expected one of"),
    ({"EXPLORER_TRACE_QUEUE_SIZE": "0"}, "EXPLORER_TRACE_QUEUE_SIZE='0': expected a whole number from 1 to"),
    (
        {"EXPLORER_TRACE_QUEUE_SIZE": "-1"},
        "EXPLORER_TRACE_QUEUE_SIZE='-1': expected a whole number from 1 to",
    ),
    ({"EXPLORER_TRACE_MAX_PAYLOAD": "-1"}, "EXPLORER_TRACE_MAX_PAYLOAD='-1': expected a whole number"),
    ({"EXPLORER_TRACE_MAX_PAYLOAD": "abc"}, "EXPLORER_TRACE_MAX_PAYLOAD='abc': expected a whole number"),
    ({"EXPLORER_TRACE_SLOW_WAIT_MS": "-5"}, "EXPLORER_TRACE_SLOW_WAIT_MS='-5': expected a whole number"),
    ({"EXPLORER_TRACE": "bogus"}, "EXPLORER_TRACE='bogus': expected one of compact, full, off"),
    ({"EXPLORER_TRACE_SHOW_CREDENTIALS": "maybe"}, "EXPLORER_TRACE_SHOW_CREDENTIALS='maybe': expected 1/0"),
    (
        {"EXPLORER_TRACE_FILE": "/tmp"},
        "EXPLORER_TRACE_FILE='/tmp': expected a file to append to, not a directory",
    ),
    (
        {"EXPLORER_TRACE_FILE": "/nowhere/t.jsonl"},
        "expected a file in a directory that exists (/nowhere does not)",
    ),
]


@pytest.mark.parametrize(("env", "line"), BAD, ids=[next(iter(env.values())) for env, _ in BAD])
def test_a_bad_value_stops_start_up_with_one_line_naming_it(env, line):
    result = started_with(**env)
    assert result.returncode == 2
    [said] = result.stderr.splitlines()
    assert said.startswith("explorer.trace: ") and line in said


@pytest.mark.parametrize("server", ["daphne", "runserver"])
def test_the_check_runs_wherever_the_app_starts(server):
    """Under python -m daphne, Django's system checks never run: the app's own check does."""
    command = {
        "daphne": [sys.executable, "-m", "daphne", "-p", "0", "explorer.asgi:application"],
        "runserver": [sys.executable, "manage.py", "runserver", "127.0.0.1:0", "--noreload"],
    }[server]
    result = started_with(command=command, EXPLORER_TRACE_QUEUE_SIZE="0")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "explorer.trace: EXPLORER_TRACE_QUEUE_SIZE='0': expected a whole number from 1 to 1,000,000"
    ]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"MODE": "loud"}, "EXPLORER_TRACE['MODE']='loud': expected one of compact, full, off"),
        ({"MAX_PAYLOAD": 0}, "EXPLORER_TRACE['MAX_PAYLOAD']=0: expected a whole number from 1 to 1,000,000"),
        ({"QUEUE_SIZE": "big"}, "EXPLORER_TRACE['QUEUE_SIZE']='big': expected a whole number"),
        ({"SLOW_WAIT_MS": -1}, "EXPLORER_TRACE['SLOW_WAIT_MS']=-1: expected a whole number from 0"),
        ({"LOUDNESS": 11}, "EXPLORER_TRACE has no setting 'LOUDNESS'"),
        (
            {"CREDENTIALS": ["(unclosed"]},
            "EXPLORER_TRACE['CREDENTIALS']=['(unclosed']: expected regular expressions",
        ),
    ],
)
def test_a_bad_value_in_settings_is_named_and_refused(options, problem):
    with override_settings(EXPLORER_TRACE=options):
        _, problems = read_settings()
        assert any(p.startswith(problem) for p in problems), problems
        with pytest.raises(ImproperlyConfigured, match="EXPLORER_TRACE"):
            trace_config()


def test_the_defaults_have_no_problem():
    assert read_settings()[1] == []


def test_daphne_comes_first_so_runserver_serves_asgi():
    from django.conf import settings

    assert settings.INSTALLED_APPS[0] == "daphne"
    assert settings.ASGI_APPLICATION == "explorer.asgi.application"


def test_a_middleware_in_its_own_mode_gives_every_connection_one_config_made_again_when_settings_change(
    endpoint,
):
    """``TraceMiddleware(mode=...)``: one config for every connection (not one made per handshake), in its
    mode, and a new one once the settings change."""
    from consumers.async_consumer import ExplorerAsyncConsumer
    from consumers.sync_consumer import ExplorerSyncConsumer
    from explorer.trace import TraceMiddleware

    consumer = {"sc": ExplorerSyncConsumer, "ac": ExplorerAsyncConsumer}[endpoint]
    middleware = TraceMiddleware(consumer.as_asgi(), mode="full")
    first = middleware.config()
    assert first.mode == "full" and middleware.config() is first
    with override_settings(EXPLORER_TRACE={"MAX_PAYLOAD": 17}):
        changed = middleware.config()
        assert (changed.mode, changed.max_payload) == ("full", 17) and middleware.config() is changed
    assert middleware.config().max_payload == trace_config().max_payload != 17
