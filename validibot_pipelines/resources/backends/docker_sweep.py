"""Labels on every worker container, and the orphan sweep that relies on them.

A container is *ours* when it carries ``org.validibot.managed=true``; its ``started_at`` and
``timeout_seconds`` labels say when it must be gone. The backend removes each container after its run, but a
control plane that dies mid-run (OOM-killed, node lost, ``kill -9``) leaves its container running. The sweep
removes every managed container older than its timeout plus a grace period, so an orphan never outlives its
own deadline by much. It runs at every launch (cleanup at worker start), from the ``docker_orphan_sweep``
sensor, and from ``validibot docker-cleanup``.

Only the engine is asked (labels, list, remove): nothing here imports Dagster, so the CLI stays light.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LABEL_PREFIX = "org.validibot"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_RUN_ID = f"{LABEL_PREFIX}.run_id"
LABEL_VALIDATOR = f"{LABEL_PREFIX}.validator"
LABEL_STARTED_AT = f"{LABEL_PREFIX}.started_at"
LABEL_TIMEOUT = f"{LABEL_PREFIX}.timeout_seconds"
MANAGED_FILTER = {"label": f"{LABEL_MANAGED}=true"}
DEFAULT_TIMEOUT_SECONDS = 3600.0

log = logging.getLogger(__name__)


def container_labels(*, run_id: str, validator: str, started_at: datetime, timeout_seconds: float) -> dict[str, str]:
    """The labels the sweep (and an operator's ``docker ps --filter label=...``) reads back."""
    return {
        LABEL_MANAGED: "true",
        LABEL_RUN_ID: run_id,
        LABEL_VALIDATOR: validator,
        LABEL_STARTED_AT: started_at.astimezone(UTC).isoformat(),
        LABEL_TIMEOUT: str(int(timeout_seconds)),
    }


@dataclass(frozen=True)
class SweptContainer:
    """One container the sweep removed (what the sensor and the CLI report)."""

    container_id: str
    name: str
    run_id: str
    validator: str
    status: str
    age_seconds: float
    timeout_seconds: float


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        # Docker reports nanoseconds ("2026-11-23T11:05:00.123456789Z"), which fromisoformat rejects.
        head, _, _frac = text.partition(".")
        try:
            value = datetime.fromisoformat(head.replace("Z", "") + "+00:00")
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def deadline_facts(container: Any) -> tuple[datetime | None, float]:
    """(started_at, timeout) from the labels; a container with unreadable labels falls back to its
    engine creation time and the default timeout, so a mangled label cannot make it immortal."""
    labels = container.labels or {}
    started = _parse_time(labels.get(LABEL_STARTED_AT)) or _parse_time(container.attrs.get("Created"))
    try:
        timeout = float(labels.get(LABEL_TIMEOUT, DEFAULT_TIMEOUT_SECONDS))
    except ValueError:
        timeout = DEFAULT_TIMEOUT_SECONDS
    return started, timeout


def sweep_orphans(client: Any, *, grace_seconds: float, now: datetime | None = None,
                  remove_all: bool = False) -> list[SweptContainer]:
    """Remove (force: stop + kill + delete) managed containers past ``started_at + timeout + grace``.

    ``remove_all`` removes every managed container whatever its age (the cleanup command's ``--all``, for
    an operator who knows no control plane is running). ``now`` is injectable so the rule is testable
    without waiting an hour.
    """
    import docker.errors

    now = now or datetime.now(UTC)
    removed: list[SweptContainer] = []
    for container in client.containers.list(all=True, filters=MANAGED_FILTER):
        started, timeout = deadline_facts(container)
        age = (now - started).total_seconds() if started else float("inf")
        if not remove_all and age <= timeout + grace_seconds:
            continue
        labels = container.labels or {}
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            continue  # removed concurrently (its own backend finished, or another sweep): nothing to do
        except docker.errors.APIError as exc:
            log.warning("could not remove orphan container %s: %s", container.short_id, exc)
            continue
        removed.append(SweptContainer(
            container_id=container.id, name=container.name, run_id=labels.get(LABEL_RUN_ID, "?"),
            validator=labels.get(LABEL_VALIDATOR, "?"), status=container.status, age_seconds=round(age, 1),
            timeout_seconds=timeout,
        ))
        log.info("removed orphan worker container %s (run %s, %s, age %.0f s > timeout %.0f s + grace %.0f s)",
                 container.short_id, labels.get(LABEL_RUN_ID), container.status, age, timeout, grace_seconds)
    return removed
