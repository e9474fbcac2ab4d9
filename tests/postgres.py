"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a cluster of its own."""

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from explorer.serving import free_port

# Debian's postgresql-NN packages keep the server's binaries off PATH, one directory per version.
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"


def postgres_binaries():
    """The directory of the newest installed server's ``initdb`` and ``postgres``, or None."""
    found = [
        path
        for path in Path("/").glob(DEBIAN_BINARIES.lstrip("/"))
        if (path / "initdb").exists() and (path / "postgres").exists()
    ]
    if found:
        return max(found, key=lambda path: [int(n) for n in re.findall(r"\d+", path.parent.name)] or [0])
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres and Path(initdb).parent == Path(postgres).parent:
        return Path(initdb).parent
    return None


class PostgresServer:
    """A real PostgreSQL server on a free loopback port, its cluster and unix socket in a temporary
    directory of its own, with a fresh database at ``url``.

    postgres refuses to run as root: as root, initdb and postgres run as the ``postgres`` system user
    (which Debian's package makes), on a directory given to it; otherwise as the current user.
    """

    USER = "explorer"
    DATABASE = "explorer"
    # For tests only: nothing here needs to outlive a crash.
    FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "50"}

    def __init__(self, binaries=None, port=None):
        self.binaries = Path(binaries or postgres_binaries())
        self.password = secrets.token_hex(12)
        self.process = None
        # Not under pytest's basetemp: that is 0700 and its owner's, and postgres may be another user.
        self.directory = Path(tempfile.mkdtemp(prefix="explorer-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.run_as = self.postgres_user() if os.geteuid() == 0 else {}
        try:
            if self.run_as:
                os.chown(self.directory, self.run_as["user"], self.run_as["group"])
            self.initdb()
            for _attempt in range(3):  # a free port can be taken before postgres binds it
                self.port = port or free_port()
                if self.start():
                    break
            else:
                raise RuntimeError(f"postgres did not start:\n{self.log_tail()}")
            with self.connect("postgres") as connection:
                connection.execute(f'CREATE DATABASE "{self.DATABASE}"')
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def postgres_user():
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root, and there is no postgres user to run postgres as "
                "(Debian's postgresql package makes one)"
            ) from None
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def popen(self, command, **kwargs):
        """``command`` as the user postgres runs as, its output in the log."""
        with open(self.log, "a", encoding="utf-8") as log:
            return subprocess.Popen(
                command,
                cwd=self.directory,
                env={**os.environ, "LC_ALL": "C"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self.run_as,
                **kwargs,
            )

    def initdb(self):
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        if self.run_as:
            os.chown(password_file, self.run_as["user"], self.run_as["group"])
        command = [
            str(self.binaries / "initdb"),
            f"--pgdata={self.data}",
            f"--username={self.USER}",
            f"--pwfile={password_file}",
            "--auth-local=trust",  # the socket is in a directory only its user can enter
            "--auth-host=scram-sha-256",  # TCP, as the explorer connects, needs the password
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        initdb = self.popen(command)
        if initdb.wait(timeout=120) != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{self.log_tail()}")
        password_file.unlink()

    def start(self):
        """Start postgres on ``self.port``: whether it answers there (False if it exited: a taken port?)."""
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.directory),
            **self.FAST,
        }
        command = [str(self.binaries / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        self.process = self.popen(command)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                self.connect("postgres").close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise TimeoutError(f"postgres did not answer on port {self.port} within 30 s:\n{self.log_tail()}")

    def connect(self, database):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.USER,
            password=self.password,
            dbname=database,
            connect_timeout=2,
            autocommit=True,
        )

    @property
    def url(self):
        return f"postgres://{self.USER}:{self.password}@127.0.0.1:{self.port}/{self.DATABASE}"

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        """End the postgres this started (a fast shutdown: clients are disconnected), wait for it,
        and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
