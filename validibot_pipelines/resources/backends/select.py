"""Choose each validator's compute backend from configuration (the feature flag), generic over validators.

``VALIDIBOT_<VALIDATOR>_BACKEND`` = ``local`` (default) | ``docker`` | ``modal`` | ``cloudrun`` for each registered
validator, e.g. ``VALIDIBOT_XML_BACKEND=docker``.
The value is read when the code location loads (``build_defs``), so switching back is: set it to ``local``
(or unset it) and reload the code location (UI "Reload definitions", or restart ``dagster dev``). The
workers stay deployed; nothing is rebuilt. The same value names the asset's concurrency pool
(``validibot-<backend>``), so a backfill on Modal or Cloud Run is bounded by that pool's limit.

Per-backend settings are environment variables too (no secrets — Modal reads its token from the
environment/profile; Cloud Run and GCS use the ambient service account):

* Modal: ``VALIDIBOT_<V>_MODAL_APP`` (default ``validibot-<v>``); a validator with an input cache volume (its
  registration's ``modal_cache_volume``) uses its ``-test`` twin under ``VALIDIBOT_ENV=test`` or its own flag
  (the same rule as the deployed app).
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

from validibot_pipelines.environments import modal_volume_name

BACKENDS = ("local", "docker", "modal", "cloudrun")
DEFAULT_BACKEND = "local"


class BackendSelectionError(ValueError):
    """A backend flag names something that does not exist, or its module is not installed."""


def env_prefix(validator: str) -> str:
    return "VALIDIBOT_" + validator.upper().replace("-", "_")


def backend_name(validator: str, env: Mapping[str, str] | None = None) -> str:
    """The backend configured for ``validator`` (a registered validator's name)."""
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
    return module.DockerBackend(image=docker_image(validator, env))


def docker_image(validator: str, env: Mapping[str, str] | None = None) -> str:
    """The validator's worker image: ``VALIDIBOT_<V>_DOCKER_IMAGE`` or ``validibot-worker-<v>:<version>`` (each
    validator has its own image variant: ``containers/build <validator>``)."""
    from validibot_pipelines import __version__

    env = os.environ if env is None else env
    return env.get(f"{env_prefix(validator)}_DOCKER_IMAGE") or f"validibot-worker-{validator}:{__version__}"


def _cache_volume(validator: str, env: Mapping[str, str]) -> str:
    """The Modal volume the validator's app caches inputs on (its registration), '' when it has none."""
    from validibot_pipelines.validators.registry import get

    try:
        registered = get(validator)
    except KeyError:
        return ""
    if not registered.modal_cache_volume:
        return ""
    return modal_volume_name(registered.modal_cache_volume, registered.modal_test_flag, env)


def make_backend(validator: str, env: Mapping[str, str] | None = None) -> ConfigurableResource:
    """The backend resource for ``validator`` as configured in ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    name = backend_name(validator, env)
    prefix = env_prefix(validator)
    if name == "local":
        from validibot_pipelines.resources.backends.local import LocalSubprocessBackend

        return LocalSubprocessBackend(validator=validator)
    if name == "docker":
        return _docker_backend(validator, env)
    if name == "modal":
        from validibot_pipelines.resources.backends.modal import ModalBackend

        return ModalBackend(
            app_name=env.get(f"{prefix}_MODAL_APP") or f"validibot-{validator}",
            stand_in_volume_dir=env.get("VALIDIBOT_MODAL_STAND_IN_DIR", ""),
            cache_volume=_cache_volume(validator, env),
        )
    from validibot_pipelines.resources.backends.cloudrun import CloudRunJobsBackend

    return CloudRunJobsBackend(
        project=env.get("VALIDIBOT_CLOUDRUN_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT", ""),
        region=env.get("VALIDIBOT_CLOUDRUN_REGION") or "us-central1",
        job=env.get(f"{prefix}_CLOUDRUN_JOB") or f"validibot-{validator}",
        max_in_flight=int(env.get("VALIDIBOT_CLOUDRUN_MAX_IN_FLIGHT") or 20),
        stand_in=env.get("VALIDIBOT_CLOUDRUN_STAND_IN") == "1",
    )
