"""The database as the explorer's commands use it: a query that takes as long as asked, and its errors.

``/query SECONDS`` runs one statement that the database itself spends
SECONDS on: PostgreSQL's ``pg_sleep``, and on SQLite a function of the same
name registered on each new connection (SQLite is a library: its functions
are Python's, called from inside the statement).
"""

import time

from django.db import DatabaseError, InterfaceError, connection
from django.db.backends.signals import connection_created

# What a database that is down, locked or missing its tables raises: the client hears why, briefly.
ERRORS = (DatabaseError, InterfaceError)
SLEEP = "SELECT pg_sleep(%s)"


def slow_query(seconds: float) -> None:
    """One statement that takes ``seconds`` on the database."""
    with connection.cursor() as cursor:
        cursor.execute(SLEEP, [seconds])


def pg_sleep(seconds):
    time.sleep(seconds)
    return seconds


def add_pg_sleep(sender, connection, **kwargs):
    """``pg_sleep`` on a new SQLite connection, so one statement serves both databases."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("pg_sleep", 1, pg_sleep)


def install() -> None:
    connection_created.connect(add_pg_sleep, dispatch_uid="explorer.database.add_pg_sleep")
