"""Where things live on the embedded default, overridable by environment variables.

``VALIDIBOT_HOME`` (default ``./.validibot``) holds the local landing zone and object store; production sets
``VALIDIBOT_LANDING_URI`` / ``VALIDIBOT_STORE_URI`` to ``gs://`` or ``s3://`` prefixes instead.
"""

from __future__ import annotations

import os
from pathlib import Path


def validibot_home() -> Path:
    return Path(os.environ.get("VALIDIBOT_HOME", ".validibot")).resolve()


def default_store_uri() -> str:
    """``VALIDIBOT_STORE_URI`` under the environment's prefix (see environments.py)."""
    from validibot_pipelines.environments import scoped_uri

    return scoped_uri(os.environ.get("VALIDIBOT_STORE_URI") or (validibot_home() / "store").as_uri())


def default_landing_uri() -> str:
    from validibot_pipelines.environments import scoped_uri

    return scoped_uri(os.environ.get("VALIDIBOT_LANDING_URI") or (validibot_home() / "landing").as_uri())


#: ``VALIDIBOT_SANDBOX_<FIELD>`` environment variables, one per :class:`~validibot_pipelines.envelopes.base.
#: SandboxLimits` field (e.g. ``VALIDIBOT_SANDBOX_MEMORY_BYTES``): defaults of the settings resource and the CLI.
SANDBOX_ENV_PREFIX = "VALIDIBOT_SANDBOX_"


def replay_verdicts_from_env() -> bool:
    """``VALIDIBOT_REPLAY_VERDICTS`` (default on): replay a verdict reached for identical inputs (``0``: always
    launch, e.g. to re-run everything on a new backend)."""
    return os.environ.get("VALIDIBOT_REPLAY_VERDICTS", "1").strip().lower() not in ("0", "false", "no", "off")


def sandbox_limits_from_env():  # noqa: ANN201 - SandboxLimits; imported lazily to keep this module light
    from validibot_pipelines.envelopes.base import SandboxLimits

    values = {}
    for name in SandboxLimits.model_fields:
        raw = os.environ.get(SANDBOX_ENV_PREFIX + name.upper())
        if raw:
            values[name] = int(float(raw))
    return SandboxLimits(**values)
