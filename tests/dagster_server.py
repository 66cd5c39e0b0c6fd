"""Start ``dagster dev`` or ``dagster-webserver`` on this checkout's workspace.yaml for a test, and stop it.

Shared by the UI tests. The server runs in its own session so the whole process group can be stopped with
SIGINT: ``dagster dev`` maps SIGTERM to SIGINT, which a background shell would have set to ignored.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


@contextmanager
def dagster_server(command: list[str], env: dict[str, str], log_path: Path,
                   start_timeout: float = 120, workspace: str | None = "workspace.yaml") -> Iterator[int]:
    """Run ``command`` (``["dagster", "dev"]``, ``["dagster-webserver"]``, or ``["dg", "dev"]`` with
    ``workspace=None``: dg finds the project from pyproject.toml) until the block ends; yields the port."""
    port = free_port()
    program = str(Path(sys.executable).with_name(command[0]))
    where = ["-w", workspace] if workspace else []
    with open(log_path, "w") as log:
        proc = subprocess.Popen([program, *command[1:], *where, "-h", "127.0.0.1", "-p", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + start_timeout
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                    break
                except OSError:
                    assert proc.poll() is None, log_path.read_text()[-3000:]
                    if time.time() > deadline:
                        pytest.fail(f"{' '.join(command)} did not start within {start_timeout:g} s")
                    time.sleep(1)
            yield port
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
