"""Real storage servers for tests: gcp-storage-emulator (``gs://``) and moto (``s3://``).

Each helper starts the server as a subprocess (in its own process group) on a free loopback port, waits until it
answers HTTP, yields its endpoint (``http://127.0.0.1:N``) and kills the whole process group on exit. Both run
in memory: nothing is written outside a throwaway working directory. The executables are looked up next to
``sys.executable`` (the venv's ``bin/``), falling back to ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
START_ATTEMPTS = 3  # a free port can be taken between probing and binding; retry on another one


def _executable(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"{name} not found next to {sys.executable} or on PATH: install the project's [test] extra")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback test server
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def _serve(name: str, argv: Callable[[int], list[str]], probe_path: str) -> Iterator[str]:
    """Start ``argv(port)``, wait for ``GET probe_path`` to return 200, yield the endpoint, kill at exit."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as workdir:
        log_path = Path(workdir) / "server.log"
        for attempt in range(1, START_ATTEMPTS + 1):
            port = _free_port()
            endpoint = f"http://{HOST}:{port}"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    argv(port),
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group, so killpg takes any children too
                )
            try:
                deadline = time.monotonic() + START_TIMEOUT_S
                while proc.poll() is None and time.monotonic() < deadline:
                    if _answers(endpoint + probe_path):
                        break
                    time.sleep(0.02)
                else:
                    output = log_path.read_text(errors="replace")[-2000:]
                    if proc.poll() is not None and attempt < START_ATTEMPTS:
                        continue  # died on start (most likely the port was taken): try another port
                    raise RuntimeError(
                        f"{name} did not answer on {endpoint}{probe_path} (exit code {proc.poll()}); output:\n{output}"
                    )
                yield endpoint
                return
            finally:
                _kill_group(proc)


def gcs_emulator() -> contextlib.AbstractContextManager[str]:
    """gcp-storage-emulator, in memory; point google-cloud-storage at it with ``STORAGE_EMULATOR_HOST``."""
    exe = _executable("gcp-storage-emulator")
    return _serve(
        "gcp-storage-emulator",
        lambda port: [exe, "start", "--host", HOST, "--port", str(port), "--in-memory", "--quiet"],
        "/storage/v1/b?project=validibot-test",
    )


def moto_s3() -> contextlib.AbstractContextManager[str]:
    """moto's standalone server (all services, S3 included); point boto3 at it with ``AWS_ENDPOINT_URL``."""
    exe = _executable("moto_server")
    return _serve("moto_server", lambda port: [exe, "-H", HOST, "-p", str(port)], "/moto-api/")
