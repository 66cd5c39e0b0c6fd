"""Choose each validator's compute backend from configuration (the feature flag), generic over validators.

``VALIDIBOT_<VALIDATOR>_BACKEND`` = ``local`` (default) | ``docker`` | ``modal`` | ``cloudrun``, e.g.
``VALIDIBOT_FMI_BACKEND=modal``, ``VALIDIBOT_ENERGYPLUS_BACKEND=cloudrun``, ``VALIDIBOT_MESH_BACKEND=docker``.
The value is read when the code location loads (``build_defs``), so switching back is: set it to ``local``
(or unset it) and reload the code location (UI "Reload definitions", or restart ``dagster dev``). The
workers stay deployed; nothing is rebuilt. The same value names the asset's concurrency pool
(``validibot-<backend>``), so a backfill on Modal or Cloud Run is bounded by that pool's limit.

Per-backend settings are environment variables too (no secrets — Modal reads its token from the
environment/profile; Cloud Run and GCS use the ambient service account):

* Modal: ``VALIDIBOT_<V>_MODAL_APP`` (default ``validibot-<v>``); ``FMI_USE_TEST_VOLUME=1`` or
  ``VALIDIBOT_ENV=test`` picks ``fmi-cache-test`` for the FMU cache volume (the same rule as the deployed app).
* Cloud Run: ``VALIDIBOT_CLOUDRUN_PROJECT``, ``VALIDIBOT_CLOUDRUN_REGION`` (default ``us-central1``),
  ``VALIDIBOT_<V>_CLOUDRUN_JOB`` (default ``validibot-<v>``), ``VALIDIBOT_CLOUDRUN_MAX_IN_FLIGHT`` (default 20
  unfinished executions per job; further launches wait and retry).
* Docker: ``VALIDIBOT_<V>_DOCKER_IMAGE`` (default ``validibot-worker-<v>:<version>``, built from containers/).
* Without a cloud account (demos, tests): ``VALIDIBOT_MODAL_STAND_IN_DIR=<folder>`` and
  ``VALIDIBOT_CLOUDRUN_STAND_IN=1`` switch the two clouds' seams to their local stand-ins.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from dagster import ConfigurableResource

from validibot_pipelines.environments import FMI_CACHE_VOLUME, FMI_TEST_FLAG, modal_volume_name

BACKENDS = ("local", "docker", "modal", "cloudrun")
DEFAULT_BACKEND = "local"


class BackendSelectionError(ValueError):
    """A backend flag names something that does not exist, or its module is not installed."""


def env_prefix(validator: str) -> str:
    return "VALIDIBOT_" + validator.upper().replace("-", "_")


def backend_name(validator: str, env: Mapping[str, str] | None = None) -> str:
    """The backend configured for ``validator`` (``fmi``, ``energyplus``, ``mesh``, …)."""
    env = os.environ if env is None else env
    var = f"{env_prefix(validator)}_BACKEND"
    name = (env.get(var) or DEFAULT_BACKEND).strip().lower()
    if name not in BACKENDS:
        raise BackendSelectionError(f"{var}={env.get(var)!r} is not a backend; use one of {', '.join(BACKENDS)}")
    return name


def pool_for(validator: str, env: Mapping[str, str] | None = None) -> str:
    """Concurrency pool of the steps that launch workers for ``validator`` (one pool per backend)."""
    return f"validibot-{backend_name(validator, env)}"


def _docker_backend(validator: str, env: Mapping[str, str]) -> ConfigurableResource:
    try:
        module = importlib.import_module("validibot_pipelines.resources.backends.docker")
    except ModuleNotFoundError as exc:
        raise BackendSelectionError(
            f"{env_prefix(validator)}_BACKEND=docker but the Docker backend module is missing ({exc}); "
            "install a build that ships validibot_pipelines/resources/backends/docker.py or choose another backend"
        ) from None
    cls = module.DockerBackend
    kwargs: dict[str, object] = {}
    # Each validator has its own image variant (containers/Dockerfile, --build-arg VALIDATOR=<validator>).
    from validibot_pipelines import __version__

    kwargs["image"] = env.get(f"{env_prefix(validator)}_DOCKER_IMAGE") or f"validibot-worker-{validator}:{__version__}"
    return cls(**kwargs)


def make_backend(validator: str, env: Mapping[str, str] | None = None) -> ConfigurableResource:
    """The backend resource for ``validator`` as configured in ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    name = backend_name(validator, env)
    prefix = env_prefix(validator)
    if name == "local":
        from validibot_pipelines.resources.backends.local import LocalSubprocessBackend

        return LocalSubprocessBackend()
    if name == "docker":
        return _docker_backend(validator, env)
    if name == "modal":
        from validibot_pipelines.resources.backends.modal import ModalBackend

        return ModalBackend(
            app_name=env.get(f"{prefix}_MODAL_APP") or f"validibot-{validator}",
            stand_in_volume_dir=env.get("VALIDIBOT_MODAL_STAND_IN_DIR", ""),
            cache_volume=modal_volume_name(FMI_CACHE_VOLUME, FMI_TEST_FLAG, env) if validator == "fmi" else "",
        )
    from validibot_pipelines.resources.backends.cloudrun import CloudRunJobsBackend

    return CloudRunJobsBackend(
        project=env.get("VALIDIBOT_CLOUDRUN_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT", ""),
        region=env.get("VALIDIBOT_CLOUDRUN_REGION") or "us-central1",
        job=env.get(f"{prefix}_CLOUDRUN_JOB") or f"validibot-{validator}",
        max_in_flight=int(env.get("VALIDIBOT_CLOUDRUN_MAX_IN_FLIGHT") or 20),
        stand_in=env.get("VALIDIBOT_CLOUDRUN_STAND_IN") == "1",
    )
