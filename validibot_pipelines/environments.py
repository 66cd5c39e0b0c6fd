"""Environment separation: ``VALIDIBOT_ENV`` = ``dev`` (default, the local embedded setup), ``test`` or ``prod``.

* Object-store prefixes: in ``test`` and ``prod`` the configured ``VALIDIBOT_STORE_URI`` /
  ``VALIDIBOT_LANDING_URI`` get the environment as a last path segment (``gs://bucket/store`` ->
  ``gs://bucket/store/test``), so the two never share a key even in one bucket. ``dev`` keeps the URIs as given.
* A non-prod environment refuses production locations: a ``gs://`` / ``s3://`` URI whose bucket or path has a
  ``prod`` / ``production`` token, or that starts with an entry of ``VALIDIBOT_PROD_BUCKETS`` (comma-separated
  URI prefixes). The error names the URI and the fix; integration runs therefore cannot write to production.
* Modal volumes: ``test`` uses the ``-test`` volumes (``modal_volume_name``).
* Dagster storage: one PostgreSQL database per environment (``DAGSTER_PG_DB``, see deploy/).

No ``dagster`` import: worker-side code and Modal apps use this too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from validibot_pipelines.storage import join_uri

ENV_VAR = "VALIDIBOT_ENV"
ENVIRONMENTS = ("dev", "test", "prod")
PROD_TOKENS = {"prod", "production", "prd"}


class EnvironmentIsolationError(ValueError):
    """A non-production environment was pointed at a production location."""


def current_environment(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    env = environ.get(ENV_VAR, "dev").strip().lower() or "dev"
    if env not in ENVIRONMENTS:
        raise ValueError(f"{ENV_VAR}={env!r} is not an environment; use one of {', '.join(ENVIRONMENTS)}")
    return env


def is_production_uri(uri: str) -> bool:
    extra = [p.strip().rstrip("/") for p in os.environ.get("VALIDIBOT_PROD_BUCKETS", "").split(",") if p.strip()]
    if any(uri == p or uri.startswith(p + "/") for p in extra):
        return True
    if not uri.startswith(("gs://", "s3://")):
        return False  # local folders are per machine; list shared ones in VALIDIBOT_PROD_BUCKETS
    tokens = set(re.split(r"[/\-_.]+", uri.split("://", 1)[1].lower()))
    return bool(tokens & PROD_TOKENS)


def check_isolated(uri: str, env: str | None = None) -> str:
    """Return ``uri``, or raise when a non-prod environment would touch a production location."""
    env = env or current_environment()
    if env != "prod" and is_production_uri(uri):
        raise EnvironmentIsolationError(
            f"{uri}: a production location, refused in the {env!r} environment ({ENV_VAR}={env}); point "
            f"VALIDIBOT_STORE_URI / VALIDIBOT_LANDING_URI at a test bucket, or set {ENV_VAR}=prod on production only")
    return uri


def scoped_uri(base_uri: str, env: str | None = None) -> str:
    """The environment's own prefix under ``base_uri`` (unchanged in dev), checked for isolation."""
    env = env or current_environment()
    uri = base_uri if env == "dev" or base_uri.rstrip("/").endswith("/" + env) else join_uri(base_uri, env)
    return check_isolated(uri, env)


def modal_volume_name(base: str, flag_var: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``<base>-test`` in the test environment, or when the validator's own flag (e.g. ``FMI_USE_TEST_VOLUME``) is 1.

    The one rule for both sides: the Modal app picks the volume it mounts at deploy time, the control plane
    (``resources/backends/select.py``) the volume it uploads to.
    """
    environ = os.environ if environ is None else environ
    if current_environment(environ) == "test" or (flag_var and environ.get(flag_var) == "1"):
        return f"{base}-test"
    return base
