"""A real PostgreSQL server for tests: initdb + pg_ctl on a spare port in a temp folder, as user postgres.

Runs the Debian binaries (/usr/lib/postgresql/<version>/bin, installed by scripts/install-system-deps). As
root the server runs as ``postgres`` through ``runuser`` (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed; run scripts/install-system-deps")
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(port: int | str, db_name: str) -> None:
    """Create database ``db_name`` on the server listening on ``port`` (one fresh database per instance)."""
    subprocess.run([str(_bin_dir() / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db_name],
                   check=True, capture_output=True, timeout=120)


@contextmanager
def postgres_server(db_name: str = "validibot_test", fsync: bool = False) -> Iterator[dict[str, str]]:
    """Yield DAGSTER_PG_* settings for a fresh server with database ``db_name``; stop and delete it after.

    Tests run with ``fsync=off`` (nothing here must survive a crash); benchmarks pass ``fsync=True`` to pay
    what a production server pays per commit."""
    bin_dir, port = _bin_dir(), _free_port()
    root = Path(tempfile.mkdtemp(prefix="validibot-pg-"))
    root.chmod(0o755)
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"

    def run(*cmd: str) -> None:
        subprocess.run([*as_postgres, *cmd], check=True, capture_output=True, timeout=120)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'}", "start")
        try:
            create_database(port, db_name)
            yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USERNAME": "postgres",
                   "DAGSTER_PG_PASSWORD": "unused-with-trust-auth", "DAGSTER_PG_DB": db_name}
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
