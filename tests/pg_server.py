"""A throwaway PostgreSQL server for tests: a real cluster in a temp folder, one per session.

Why a real server: the Postgres state store must be shown to work against PostgreSQL itself
(locking, ``ON CONFLICT``, ``RETURNING``, concurrent connections), not an emulation.

The fixture ``pg_server`` (session scope) runs ``initdb`` and ``pg_ctl start`` on a free
loopback port with password (SCRAM) authentication over TCP, and stops and deletes the
cluster at the end. It skips the tests that use it when the PostgreSQL binaries or psycopg
are missing. PostgreSQL refuses to run as root, so as root the cluster is owned by and run as
the ``postgres`` OS user (``runuser``). Durability is switched off (``fsync=off``...): the
data is thrown away, and tests stay fast.

``pg_database`` (function scope) gives each test its own fresh database and sets
``PGPASSWORD`` (the secret is read from the environment, as in production).

Install on Debian 12: ``apt-get install -y postgresql`` (binaries in
``/usr/lib/postgresql/15/bin``) and ``pip install "psycopg[binary]"``.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["PgServer", "find_pg_bin", "pg_database", "pg_server"]

USER = "cvat_track"


def find_pg_bin() -> Path | None:
    """Folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(folder, "initdb"), os.X_OK):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running throwaway cluster."""

    bin_dir: Path
    data_dir: Path
    port: int
    password: str
    as_user: list[str]

    def url(self, dbname: str = "postgres") -> str:
        """Connection URL without the password (that comes from ``PGPASSWORD``)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=60,
                              check=False)

    @classmethod
    def start(cls, bin_dir: Path) -> PgServer:
        """initdb + start; raises RuntimeError (with the server log) if either fails."""
        root = Path(tempfile.mkdtemp(prefix="cvat-track-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                shutil.rmtree(root, ignore_errors=True)
                raise RuntimeError("running as root without runuser: cannot start PostgreSQL")
            as_user = [runuser, "-u", "postgres", "--"]
            shutil.chown(root, user="postgres")
        os.chmod(root, 0o700)
        password = secrets.token_urlsafe(16)
        pwfile = root / "pw"
        pwfile.write_text(password + "\n")
        if as_user:
            shutil.chown(pwfile, user="postgres")
        server = cls(bin_dir, root / "data", _free_port(), password, as_user)
        init = server._run(str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", USER,
                           f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                           "--no-sync", "-E", "UTF8", "--locale=C")
        pwfile.unlink()
        if init.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        opts = (f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        started = server._run(str(bin_dir / "pg_ctl"), "-D", str(server.data_dir), "-o", opts,
                              "-l", str(root / "server.log"), "-w", "-t", "30", "start")
        if started.returncode != 0:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"pg_ctl start failed: {started.stderr[-1000:]}\n{log[-2000:]}")
        return server

    def stop(self) -> None:
        """Stop the server (fast: its data is thrown away) and delete the cluster."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                  "-w", "stop")
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def create_database(self) -> str:
        """A new empty database; returns its URL (no password in it)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), password=self.password, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A started throwaway PostgreSQL server (skips when PostgreSQL or psycopg is absent)."""
    pytest.importorskip("psycopg")
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    server = PgServer.start(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """URL of a fresh database on ``pg_server``; ``PGPASSWORD`` holds its password."""
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    return pg_server.create_database()
