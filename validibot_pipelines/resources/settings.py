"""Deployment settings as a Dagster resource (env-driven, so one code location serves every stage)."""

from __future__ import annotations

import importlib
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, create_model, model_validator

from validibot_pipelines.envelopes.base import SandboxLimits
from validibot_pipelines.environments import check_isolated
from validibot_pipelines.orchestration.models import IntakeLimits
from validibot_pipelines.settings import (
    default_landing_uri,
    default_store_uri,
    replay_verdicts_from_env,
    sandbox_limits_from_env,
)
from validibot_pipelines.validators import REGISTERED


class _SharedSettings(ConfigurableResource):
    """Where uploads land and results are stored, the worker timeout and the sandbox limits."""

    store_uri: str = Field(default_factory=default_store_uri, description="file://, gs:// or s3:// prefix")
    landing_uri: str = Field(default_factory=default_landing_uri, description="where authors drop models")
    worker_timeout_seconds: int = Field(default=3600, description="per worker launch")
    # sandbox limits on the model's own processes (runtime/sandbox); env defaults VALIDIBOT_SANDBOX_<FIELD>
    sandbox_memory_bytes: int = Field(default_factory=lambda: sandbox_limits_from_env().memory_bytes, gt=0,
                                      description="address space per sandboxed process (default 4 GiB)")
    sandbox_max_processes: int = Field(default_factory=lambda: sandbox_limits_from_env().max_processes, gt=0)
    sandbox_max_file_bytes: int = Field(default_factory=lambda: sandbox_limits_from_env().max_file_bytes, gt=0)
    sandbox_max_open_files: int = Field(default_factory=lambda: sandbox_limits_from_env().max_open_files, gt=16)
    sandbox_cpu_seconds: int | None = Field(default_factory=lambda: sandbox_limits_from_env().cpu_seconds,
                                            description="CPU seconds per sandboxed process; None: 2 x timeout")
    replay_verdicts: bool = Field(default_factory=replay_verdicts_from_env,
                                  description="replay the verdict reached for identical worker inputs (another "
                                              "name, same bytes) instead of launching; false: always launch")

    @model_validator(mode="after")
    def _isolated(self) -> _SharedSettings:
        """A non-prod environment never resolves to a production bucket (environments.py)."""
        check_isolated(self.store_uri)
        check_isolated(self.landing_uri)
        return self

    def sandbox_limits(self) -> SandboxLimits:
        return SandboxLimits(memory_bytes=self.sandbox_memory_bytes, max_processes=self.sandbox_max_processes,
                             max_file_bytes=self.sandbox_max_file_bytes, max_open_files=self.sandbox_max_open_files,
                             cpu_seconds=self.sandbox_cpu_seconds)

    def intake_limits(self) -> IntakeLimits:
        """Each registered validator's intake limits, from its settings fields."""
        from validibot_pipelines.validators.registry import validators

        return {v.name: v.limits(self) for v in validators()}


def _validator_fields() -> dict[str, tuple[Any, Any]]:
    fields: dict[str, tuple[Any, Any]] = {}
    for name in REGISTERED:
        own = importlib.import_module(f"validibot_pipelines.validators.{name}.settings").SETTINGS_FIELDS
        shared = (fields.keys() | _SharedSettings.model_fields.keys()) & own.keys()
        if shared:  # one setting, two meanings: refuse at import instead of silently taking the last one
            raise ValueError(f"validators/{name}/settings.py redefines settings {sorted(shared)}; rename them")
        fields.update(own)
    return fields


ValidibotSettings = create_model("ValidibotSettings", __base__=_SharedSettings, __module__=__name__,
                                 **_validator_fields())
ValidibotSettings.__doc__ = """Deployment settings: the shared ones plus each registered validator's own
(``validators/<name>/settings.py``: size caps, timeouts), all configurable on the ``settings`` resource."""
