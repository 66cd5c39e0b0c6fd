"""Deployment settings as a Dagster resource (env-driven, so one code location serves every stage)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, model_validator

from validibot_pipelines.envelopes.base import SandboxLimits
from validibot_pipelines.environments import check_isolated
from validibot_pipelines.intake.energyplus import EnergyPlusLimits
from validibot_pipelines.intake.fmi import FmuLimits
from validibot_pipelines.intake.mesh import MeshLimits
from validibot_pipelines.orchestration.models import IntakeLimits
from validibot_pipelines.settings import default_landing_uri, default_store_uri, sandbox_limits_from_env


class ValidibotSettings(ConfigurableResource):
    """Where uploads land and results are stored, and the intake limits."""

    store_uri: str = Field(default_factory=default_store_uri, description="file://, gs:// or s3:// prefix")
    landing_uri: str = Field(default_factory=default_landing_uri, description="where authors drop models")
    fmu_max_bytes: int = Field(default=50 * 1024 * 1024, description="FMU size cap")
    fmu_max_uncompressed_bytes: int = Field(default=500 * 1024 * 1024)
    fmu_max_ratio: float = Field(default=100.0, description="zip-bomb guard: uncompressed / compressed")
    simulation_timeout_seconds: int = Field(default=300, description="per FMU simulation")
    energyplus_max_bytes: int = Field(default=20 * 1024 * 1024, description="IDF / epJSON size cap")
    energyplus_timeout_seconds: int = Field(default=1800, description="per EnergyPlus simulation")
    mesh_max_bytes: int = Field(default=100 * 1024 * 1024, description="STEP / STL size cap")
    mesh_strategy_timeout_seconds: int = Field(default=120, description="per meshing strategy candidate")
    worker_timeout_seconds: int = Field(default=3600, description="per worker launch")
    # sandbox limits on the model's own processes (runtime/sandbox); env defaults VALIDIBOT_SANDBOX_<FIELD>
    sandbox_memory_bytes: int = Field(default_factory=lambda: sandbox_limits_from_env().memory_bytes, gt=0,
                                      description="address space per sandboxed process (default 4 GiB)")
    sandbox_max_processes: int = Field(default_factory=lambda: sandbox_limits_from_env().max_processes, gt=0)
    sandbox_max_file_bytes: int = Field(default_factory=lambda: sandbox_limits_from_env().max_file_bytes, gt=0)
    sandbox_max_open_files: int = Field(default_factory=lambda: sandbox_limits_from_env().max_open_files, gt=16)
    sandbox_cpu_seconds: int | None = Field(default_factory=lambda: sandbox_limits_from_env().cpu_seconds,
                                            description="CPU seconds per sandboxed process; None: 2 x timeout")

    @model_validator(mode="after")
    def _isolated(self) -> ValidibotSettings:
        """A non-prod environment never resolves to a production bucket (environments.py)."""
        check_isolated(self.store_uri)
        check_isolated(self.landing_uri)
        return self

    def sandbox_limits(self) -> SandboxLimits:
        return SandboxLimits(memory_bytes=self.sandbox_memory_bytes, max_processes=self.sandbox_max_processes,
                             max_file_bytes=self.sandbox_max_file_bytes, max_open_files=self.sandbox_max_open_files,
                             cpu_seconds=self.sandbox_cpu_seconds)

    def intake_limits(self) -> IntakeLimits:
        return IntakeLimits(
            fmu=FmuLimits(max_bytes=self.fmu_max_bytes, max_uncompressed_bytes=self.fmu_max_uncompressed_bytes,
                          max_ratio=self.fmu_max_ratio),
            energyplus=EnergyPlusLimits(max_bytes=self.energyplus_max_bytes),
            mesh=MeshLimits(max_bytes=self.mesh_max_bytes),
        )

    # side files (intake/sidefiles.py reads these by name: SideFileLimits.from_settings)
    timeseries_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="FMU input time series CSV cap")
    timeseries_max_rows: int = Field(default=1_000_000, gt=0, description="data rows of an input time series")
    timeseries_max_columns: int = Field(default=1_000, gt=1, description="columns (time + inputs) of a time series")
    weather_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="uploaded .epw weather file cap")
