"""Settings for the explorer.

Local defaults are safe to run as they are: the server binds to 127.0.0.1,
DEBUG is off unless asked for, and the secret key is made afresh at each start
unless DJANGO_SECRET_KEY gives one. Every trace option can be set here or
overridden by an environment variable of the same name.
"""

import os
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected 1/0, true/false, yes/no or on/off")


# A key made at start-up signs nothing that must outlive the process here
# (sessions are signed cookies); set DJANGO_SECRET_KEY for anything else.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = env_flag("DJANGO_DEBUG")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
# Pages from elsewhere that may open WebSockets to the explorer (explorer/origin.py):
# full origins, such as http://localhost:3000. Its own page always may.
ALLOWED_ORIGINS = [o for o in os.environ.get("DJANGO_ALLOWED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",  # first, so that `manage.py runserver` serves ASGI
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "explorer.trace",  # the trace: its dispatch hook, console, recording and commands
    "explorer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # the page is not to be framed: DENY
]

ROOT_URLCONF = "explorer.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "explorer.asgi.application"


def without_password(url):
    """``url`` with its password (and any ``password=`` option) as ``***``: what may be printed of it."""
    head, at, rest = url.rpartition("@")
    if at:
        scheme, slashes, userinfo = head.partition("://")
        if not slashes:
            scheme, userinfo = "", head
        user, colon, _password = userinfo.partition(":")
        url = f"{scheme}{slashes}{user}{colon and ':***'}@{rest}"
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


def database_from_url(url):
    """DATABASES["default"] from a URL such as postgres://USER:PASSWORD@127.0.0.1:5432/NAME, parsed by
    dj-database-url. A URL it cannot use is an ImproperlyConfigured that shows it without its password."""
    try:
        database = dj_database_url.parse(url)
    except dj_database_url.UnknownSchemeError as error:
        problem = (
            f"unknown scheme {error.scheme!r}: use postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH"
        )
    except ValueError:  # dj_database_url.ParseError, and nothing of the URL in its message
        problem = "not a valid URL (a port that is not a number? a password not urllib.parse.quote()'d?)"
    else:
        if database.get("NAME") or "service" in database.get("OPTIONS", {}):
            return database
        problem = "it names no database: put one at the end of the path, as in postgres://HOST:PORT/NAME"
    raise ImproperlyConfigured(f"DATABASE_URL={without_password(url)}: {problem}")


def conn_max_age(value):
    """DATABASE_CONN_MAX_AGE: seconds a connection is kept between handlers, or none for ever."""
    if value.lower() == "none":
        return None
    if value.isascii() and value.isdigit():
        return int(value)
    raise ImproperlyConfigured(
        f"DATABASE_CONN_MAX_AGE={value!r}: expected seconds (a whole number, 0 to close after each handler) "
        "or none (never close)"
    )


# The embedded SQLite database, unless DATABASE_URL names another (PostgreSQL,
# with psycopg 3): postgres://USER:PASSWORD@127.0.0.1:5432/NAME. Read into a
# lowercase name: a setting would be shown, password and all, on a DEBUG page.
database_url = os.environ.get("DATABASE_URL") or None
if database_url:
    DATABASES = {"default": database_from_url(database_url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
        }
    }
del database_url
# channels closes a connection older than this around every handler (the trace's query lines show it).
DATABASES["default"]["CONN_MAX_AGE"] = conn_max_age(os.environ.get("DATABASE_CONN_MAX_AGE") or "0")
# Signed-cookie sessions: AuthMiddlewareStack reads the session on every
# handshake, and this way that never needs a database table.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Rooms (/join, /say, /leave) are channel-layer groups. In one process the
# in-memory layer is enough; set REDIS_URL (redis://127.0.0.1:6379/0) to share
# rooms between several server processes.
REDIS_URL = os.environ.get("REDIS_URL") or None
if REDIS_URL:
    CHANNEL_LAYERS = {
        # channels_redis, made to ride out a Redis outage (explorer/layers.py).
        "default": {"BACKEND": "explorer.layers.ResilientRedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    # channels' in-memory layer, made to stay cheap with thousands of connections (explorer/layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "explorer.layers.InMemoryChannelLayer"}}

# Seconds all connections together may hold the sync thread, or block the event
# loop, with /sleep, /block and ?delay= in any 10 s (consumers/limits.py). Below
# daphne's 5 s handshake timeout, so a waiting handshake still completes.
EXPLORER_HOLD_SHARE = float(os.environ.get("EXPLORER_HOLD_SHARE") or 4)

# The trace: every key, its environment variable and its default are in
# explorer/trace/config.py and the README's *Settings*; set any here to change
# the default, the variable still wins. Checked at start-up.
EXPLORER_TRACE = {}

# The explorer.trace app gives the "explorer.trace" logger its queued Rich
# console (and the recording) unless LOGGING configures that logger itself.
