"""Orphan sweep as a Dagster sensor: removes worker containers a dead control plane left behind.

Each configured backend that is a :class:`DockerBackend` (deduplicated by engine) is swept every
``VALIDIBOT_DOCKER_SWEEP_INTERVAL_SECONDS`` (default 300 s). The sensor launches no runs; it reports what it
removed as its skip reason and in the sensor log, so the UI's tick history shows every removal. With only
local backends configured it does nothing.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from validibot_pipelines.resources.backends.docker import DockerBackend
from validibot_pipelines.resources.backends.docker_sweep import SweptContainer
from validibot_pipelines.validators.registry import validators

INTERVAL_SECONDS = int(os.environ.get("VALIDIBOT_DOCKER_SWEEP_INTERVAL_SECONDS", "300"))


def sweep_docker_backends(backends: list[object]) -> tuple[list[SweptContainer], list[str]]:
    """Sweep each distinct Docker engine once; engines that cannot be reached are reported, not raised."""
    import docker.errors

    removed: list[SweptContainer] = []
    problems: list[str] = []
    seen: set[str | None] = set()
    for backend in backends:
        if not isinstance(backend, DockerBackend) or backend.docker_host in seen:
            continue
        seen.add(backend.docker_host)
        try:
            removed += backend.sweep()
        except docker.errors.DockerException as exc:
            problems.append(f"{backend.docker_host or 'DOCKER_HOST'}: {exc}")
    return removed, problems


@sensor(
    name="docker_orphan_sweep", minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Removes org.validibot.managed containers older than their timeout + grace (Docker backend).",
    required_resource_keys={v.backend_resource for v in validators()},
)
def docker_orphan_sweep(context: SensorEvaluationContext, **resources: Any):
    # Every registered validator's backend: Dagster hands the required resources over as keyword arguments.
    backends = [resources.get(v.backend_resource) or getattr(context.resources, v.backend_resource)
                for v in validators()]
    if not any(isinstance(b, DockerBackend) for b in backends):
        return SkipReason("no DockerBackend configured; nothing to sweep")
    removed, problems = sweep_docker_backends(backends)
    for item in removed:
        context.log.warning(f"removed orphan container {item.name} ({item.container_id[:12]}) of run {item.run_id} "
                            f"({item.validator}, {item.status}, age {item.age_seconds:.0f} s, "
                            f"timeout {item.timeout_seconds:.0f} s)")
    for problem in problems:
        context.log.error(f"docker orphan sweep could not reach the engine: {problem}")
    names = ", ".join(item.name for item in removed) or "none"
    return SkipReason(f"swept {len(removed)} orphan container(s): {names}"
                      + (f"; unreachable: {'; '.join(problems)}" if problems else ""))
