"""The PostgreSQL path: DATABASE_URL names a real postgres (Debian's, started by the test on a free port)."""

import os
import pwd
import subprocess
import sys
import urllib.request

import pytest
from websockets.asyncio.client import connect

from explorer.serving import gone, listening
from tests.conftest import ROOT, WIRE_ENV, DaphneServer, require_postgres
from tests.postgres import PostgresServer

PASSWORD = "pw-n0t-f0r-pr1nting"


def manage(*args, env=None, timeout=120):
    """``manage.py ARGS`` in the project's root, as a user runs it."""
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**environ, "DJANGO_SETTINGS_MODULE": "explorer.settings", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tables(postgres):
    with postgres.connect(postgres.DATABASE) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


@pytest.fixture(scope="module")
def migrated(postgres_server):
    """The session's postgres, migrated by ``manage.py migrate`` with DATABASE_URL naming it."""
    assert "django_migrations" not in tables(postgres_server)  # a fresh database
    return manage("migrate", "--noinput", env={"DATABASE_URL": postgres_server.url})


def test_migrate_with_database_url_makes_the_tables_in_postgres(postgres_server, migrated):
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    made = tables(postgres_server)
    assert {"django_migrations", "auth_user", "django_content_type"} <= made
    with postgres_server.connect(postgres_server.DATABASE) as connection:
        [(applied,)] = connection.execute("SELECT count(*) FROM django_migrations").fetchall()
    assert applied > 0
    assert postgres_server.password not in migrated.stdout + migrated.stderr


def test_django_connects_to_the_database_the_url_names(postgres_server):
    shown = manage(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT current_database(), inet_server_port()')\n"
        "    print(connection.vendor, *cursor.fetchone())",
        env={"DATABASE_URL": postgres_server.url},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["postgresql", postgres_server.DATABASE, str(postgres_server.port)]


def test_without_database_url_the_embedded_sqlite_database_as_before():
    shown = manage(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.conf import settings; d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'])",
        env={"DATABASE_URL": ""},  # set but empty is unset
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["django.db.backends.sqlite3", str(ROOT / "db.sqlite3")]


@pytest.fixture(scope="module")
def postgres_daphne(tmp_path_factory, postgres_server, migrated):
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    recording = tmp_path_factory.mktemp("daphne-postgres") / "trace.jsonl"
    daphne = DaphneServer(recording, DATABASE_URL=postgres_server.url, **WIRE_ENV)
    yield daphne
    daphne.stop()


def test_daphne_with_database_url_serves_the_page(postgres_daphne):
    with urllib.request.urlopen(postgres_daphne.http_url("/"), timeout=10) as page:
        assert page.status == 200
        assert "ASGI consumer explorer" in page.read().decode()


async def test_daphne_with_database_url_echoes(postgres_server, postgres_daphne, endpoint):
    async with connect(postgres_daphne.url(endpoint)) as ws:
        await ws.send("over postgres")
        assert await ws.recv() == "over postgres"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
    assert postgres_daphne.lines, "daphne's output is read"
    assert not any(postgres_server.password in line or "Traceback" in line for line in postgres_daphne.lines)


MALFORMED = [
    (f"postgres://explorer:{PASSWORD}@127.0.0.1:notaport/explorer", "not a valid URL"),
    (f"postgress://explorer:{PASSWORD}@127.0.0.1:5432/explorer", "unknown scheme 'postgress'"),
    (f"postgres://explorer:{PASSWORD}@127.0.0.1:5432/", "it names no database"),
    (f"explorer:{PASSWORD}@127.0.0.1/explorer", "unknown scheme"),
]


@pytest.mark.parametrize(("url", "problem"), MALFORMED)
def test_a_malformed_database_url_is_improperly_configured_without_its_password(url, problem):
    checked = manage("check", env={"DATABASE_URL": url})
    assert checked.returncode != 0
    out = checked.stdout + checked.stderr
    [last] = out.strip().splitlines()[-1:]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: DATABASE_URL=")
    assert problem in last
    assert ":***@" in last
    assert PASSWORD not in out


def test_what_is_printed_of_a_database_url_has_no_password():
    from explorer.settings import without_password

    assert without_password(f"postgres://u:{PASSWORD}@h:5432/d") == "postgres://u:***@h:5432/d"
    assert without_password(f"postgres://u:p@{PASSWORD}@h/d") == "postgres://u:***@h/d"
    assert without_password(f"postgres://h/d?sslmode=require&password={PASSWORD}") == (
        "postgres://h/d?sslmode=require&password=***"
    )
    assert without_password("postgres://u@h/d") == "postgres://u@h/d"
    assert without_password("sqlite:///db.sqlite3") == "sqlite:///db.sqlite3"


def test_daphne_will_not_start_with_a_malformed_database_url(tmp_path):
    url, problem = MALFORMED[0]
    with pytest.raises(RuntimeError, match="daphne did not start") as failed:
        DaphneServer(tmp_path / "trace.jsonl", DATABASE_URL=url, **WIRE_ENV)
    assert problem in str(failed.value) and "ImproperlyConfigured: DATABASE_URL=" in str(failed.value)
    assert PASSWORD not in str(failed.value)


def test_the_postgres_it_starts_is_its_own_and_stop_ends_it():
    postgres = PostgresServer(require_postgres())
    try:
        pid, port, directory = postgres.pid, postgres.port, postgres.directory
        owner = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.getuid()
        assert os.stat(f"/proc/{pid}").st_uid == owner
        assert listening(port) and (directory / "data" / "postmaster.pid").exists()
        with postgres.connect(postgres.DATABASE) as connection:
            assert connection.execute("SELECT pg_backend_pid() <> %s", (pid,)).fetchone() == (True,)
            [(data,)] = connection.execute("SHOW data_directory").fetchall()
        assert data == str(directory / "data")
    finally:
        postgres.stop()
    assert postgres.process.returncode == 0  # a clean (fast) shutdown, waited for
    assert gone(pid, timeout=1) and not listening(port) and not directory.exists()


async def test_postgres_keeps_what_say_says_and_sleeps_in_the_database(
    postgres_server, postgres_daphne, endpoint
):
    room = f"pg-{endpoint}"
    async with (
        connect(postgres_daphne.url("sc")) as speaker,
        connect(postgres_daphne.url(endpoint)) as reader,
    ):
        await speaker.send(f"/join {room}")
        assert await speaker.recv() == f"joined {room}"
        await speaker.send(f"/say {room} kept by postgres")
        said = await speaker.recv()
        await reader.send(f"/history {room}")
        assert await reader.recv() == f"1 message in {room}, oldest first:\n{said}"
        await reader.send("/query 0.2")
        assert await reader.recv() == "queried 0.2 s"
        connection = postgres_daphne.connection_of(reader.local_address[1])
    queries = [r for r in postgres_daphne.records_of(connection) if r["kind"] == "query"]
    [sleep] = [r for r in queries if r["event"]["sql"] == "SELECT pg_sleep(%s)"]  # PostgreSQL's own
    assert sleep["took"] >= 0.2 and sleep["event"]["database"] == "default"
    assert not any(postgres_server.password in line for line in postgres_daphne.lines)


async def test_a_postgres_that_goes_down_gets_an_error_reply_and_a_note_and_the_connection_stays(
    tmp_path, endpoint
):
    postgres = PostgresServer(require_postgres())
    try:
        assert manage("migrate", "--noinput", env={"DATABASE_URL": postgres.url}).returncode == 0
        daphne = DaphneServer(tmp_path / "trace.jsonl", DATABASE_URL=postgres.url, **WIRE_ENV)
        try:
            async with connect(daphne.url(endpoint)) as ws:
                await ws.send("/history lobby")
                assert await ws.recv() == "no messages in lobby yet"
                postgres.stop()  # the database goes away under a connected client
                await ws.send("/history lobby")
                assert await ws.recv() == "error: history failed (OperationalError); the database may be down"
                await ws.send("still open")
                assert await ws.recv() == "still open"
                connection = daphne.connection_of(ws.local_address[1])
            notes = [r["note"] for r in daphne.records_of(connection) if r["kind"] == "note"]
            assert len(notes) == 1 and notes[0].startswith("history failed: OperationalError: ")
            assert f"port {postgres.port} failed" in notes[0]
            assert not any(postgres.password in line for line in daphne.lines)
        finally:
            daphne.stop()
    finally:
        postgres.stop()


def test_the_database_url_is_not_a_setting_that_a_debug_page_would_show(postgres_server):
    shown = manage(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.conf import settings\n"
        "from django.views.debug import SafeExceptionReporterFilter\n"
        "print(hasattr(settings, 'DATABASE_URL'))\n"
        "print(SafeExceptionReporterFilter().get_safe_settings())",
        env={"DATABASE_URL": postgres_server.url, "DJANGO_DEBUG": "1"},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "False"
    assert postgres_server.password not in shown.stdout


@pytest.mark.parametrize(("value", "expected"), [("", "0"), ("60", "60"), ("none", "None")])
def test_database_conn_max_age_sets_how_long_a_connection_is_kept(value, expected):
    shown = manage(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.conf import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])",
        env={"DATABASE_CONN_MAX_AGE": value},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == expected


def test_a_bad_database_conn_max_age_is_improperly_configured():
    checked = manage("check", env={"DATABASE_CONN_MAX_AGE": "soon"})
    assert checked.returncode != 0
    assert checked.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_CONN_MAX_AGE='soon': "
        "expected seconds (a whole number, 0 to close after each handler) or none (never close)"
    )
