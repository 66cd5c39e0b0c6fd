"""A real Docker-API engine for the tests: podman's API service, a local base image, the worker image.

* :func:`podman_service` starts ``podman system service --time=0 unix://<dir>/podman.sock`` (the docker SDK
  talks to it exactly as to dockerd) and stops it afterwards.
* :func:`ensure_base_image` makes ``localhost/validibot-base:bookworm`` with ``debootstrap --variant=minbase
  --include=python3 bookworm`` (no image registry is reachable here) ONCE: an existing image with that tag is
  reused, so only the first run on a machine pays for it (~40-70 s).
* :func:`build_worker_image` copies ``containers/`` to a temp build context, fetches the wheels into it with
  ``containers/fetch-wheels <validator>`` and builds the image through the engine's build API with
  ``BASE_IMAGE=<local base>`` and ``VALIDATOR=fmi|energyplus`` — the same Dockerfile production builds with
  the official Python image. (The EnergyPlus variant installs ``libx11-6`` from Debian's mirror in the build.)

The timings of both builds are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = os.environ.get("VALIDIBOT_TEST_BASE_IMAGE", "localhost/validibot-base:bookworm")
WORKER_IMAGE = "localhost/validibot-worker-fmi:test"
ENERGYPLUS_IMAGE = "localhost/validibot-worker-energyplus:test"
MESH_IMAGE = "localhost/validibot-worker-mesh:test"
XML_IMAGE = "localhost/validibot-worker-xml:test"
# What a minbase root needs no more of once it is an image (keeps the base ~100 MB smaller).
TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info")


@contextlib.contextmanager
def podman_service(sock_dir: Path, wait_seconds: float = 30) -> Iterator[str]:
    import docker

    url = f"unix://{sock_dir}/podman.sock"
    log = open(sock_dir / "podman-service.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", url], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                docker.DockerClient(base_url=url).ping()
                break
            except docker.errors.DockerException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"podman system service did not come up on {url}: "
                                       f"{(sock_dir / 'podman-service.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def ensure_base_image(client, tag: str = BASE_IMAGE) -> float:  # noqa: ANN001
    """Make the base image unless it exists; returns the seconds spent (0.0 when re-used)."""
    import docker.errors

    try:
        client.images.get(tag)
        return 0.0
    except docker.errors.ImageNotFound:
        pass
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="validibot-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(rootfs)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for rel in TRIM:
            shutil.rmtree(rootfs / rel, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "-", tag], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {rootfs} failed")
    seconds = time.monotonic() - start
    print(f"\n[docker tests] base image {tag} built with debootstrap in {seconds:.1f} s", file=sys.stderr)
    return seconds


def build_worker_image(client, context_dir: Path, *, base: str = BASE_IMAGE, tag: str = WORKER_IMAGE,  # noqa: ANN001
                       validator: str = "fmi") -> float:
    """fetch-wheels + ``docker build`` of containers/ on the local base; returns the seconds spent."""
    import docker.errors

    start = time.monotonic()
    shutil.copytree(REPO / "containers", context_dir, ignore=shutil.ignore_patterns("wheels", "image"))
    env = {**os.environ, "PYTHON": sys.executable, "VALIDIBOT_PROJECT_DIR": str(REPO)}
    subprocess.run([str(context_dir / "fetch-wheels"), validator], check=True, env=env, capture_output=True)
    fetched = time.monotonic() - start
    try:
        previous = client.images.get(tag).id
    except docker.errors.ImageNotFound:
        previous = None
    try:
        metadata = (context_dir / "image" / "metadata.json").read_text().strip()  # what containers/build passes
        image, _ = client.images.build(path=str(context_dir), tag=tag, rm=True,
                                       buildargs={"BASE_IMAGE": base, "VALIDATOR": validator,
                                                  "VALIDATOR_METADATA": metadata})
    except docker.errors.BuildError as exc:
        log = "".join(str(line.get("stream", line)) for line in exc.build_log)
        raise RuntimeError(f"worker image build failed: {exc}\n{log[-4000:]}") from None
    if previous and previous != image.id:  # the superseded image's venv layer would pile up run after run
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(previous)
    seconds = time.monotonic() - start
    print(f"\n[docker tests] worker image {tag}: wheels {fetched:.1f} s, total with build {seconds:.1f} s",
          file=sys.stderr)
    return seconds
