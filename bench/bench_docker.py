"""Benchmark: the same FMU probe + simulation launched N times on the Docker backend vs the local backend.

    .venv/bin/python bench/bench_docker.py [N]

Starts podman's Docker API service, makes (or re-uses) the debootstrap base image and builds the FMI worker
image exactly as the tests do (tests/docker_engine.py; their build times are printed), then times N
probe+simulation pairs of ``first_order_lag`` through ``DockerBackend`` and through
``LocalSubprocessBackend`` on a local store, and prints the per-launch overhead of a container and the ratio.
Not run in CI; numbers depend on the machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _time(backend, record, store: str, n: int, label: str) -> float:  # noqa: ANN001
    from validibot_pipelines.envelopes import Status
    from validibot_pipelines.validators.fmi import launch as fmi

    start = time.perf_counter()
    for i in range(n):
        probe, _ = fmi.probe(record, store_uri=store, backend=backend, attempt=f"{label}{i}")
        sim, _ = fmi.simulate(record, store_uri=store, backend=backend, attempt=f"{label}{i}",
                              simulation_timeout_seconds=60)
        assert probe.status == sim.status == Status.SUCCESS, (probe.messages, sim.messages)
    return time.perf_counter() - start


def main(n: int = 5) -> None:
    import docker

    from tests.docker_engine import WORKER_IMAGE, build_worker_image, ensure_base_image, podman_service
    from validibot_pipelines.orchestration.models import intake
    from validibot_pipelines.resources import DockerBackend, LocalSubprocessBackend
    from validibot_pipelines.validators.fmi.samples.build import build_fmu

    with tempfile.TemporaryDirectory() as tmp, podman_service(Path(tmp)) as url:
        root = Path(tmp)
        client = docker.DockerClient(base_url=url)
        base_s = ensure_base_image(client)
        image_s = build_worker_image(client, root / "context")
        store = (root / "store").as_uri()
        record = intake(build_fmu("first_order_lag", root / "fmus").as_uri(), store_uri=store)
        docker_backend = DockerBackend(image=WORKER_IMAGE, docker_host=url)
        _time(docker_backend, record, store, 1, "warm")  # first container start pays for page cache
        local_s = _time(LocalSubprocessBackend(), record, store, n, "local")
        docker_s = _time(docker_backend, record, store, n, "docker")
    launches = 2 * n
    print(f"base image: {'re-used' if base_s == 0 else f'{base_s:.1f} s (debootstrap + import)'}; "
          f"worker image: {image_s:.1f} s (fetch-wheels + build)")
    print(f"{n} x (probe + simulation) of first_order_lag.fmu")
    print(f"local subprocess: {local_s:.2f} s total, {local_s / launches:.3f} s per launch")
    print(f"docker (podman):  {docker_s:.2f} s total, {docker_s / launches:.3f} s per launch")
    print(f"container overhead per launch: {(docker_s - local_s) / launches:.3f} s; ratio docker/local: "
          f"{docker_s / local_s:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
