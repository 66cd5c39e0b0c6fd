"""Deployment settings as a Dagster resource (env-driven, so one code location serves every stage)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, model_validator

from validibot_pipelines.environments import check_isolated
from validibot_pipelines.intake.energyplus import EnergyPlusLimits
from validibot_pipelines.intake.fmi import FmuLimits
from validibot_pipelines.intake.mesh import MeshLimits
from validibot_pipelines.orchestration.models import IntakeLimits
from validibot_pipelines.settings import default_landing_uri, default_store_uri


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

    @model_validator(mode="after")
    def _isolated(self) -> ValidibotSettings:
        """A non-prod environment never resolves to a production bucket (environments.py)."""
        check_isolated(self.store_uri)
        check_isolated(self.landing_uri)
        return self

    def intake_limits(self) -> IntakeLimits:
        return IntakeLimits(
            fmu=FmuLimits(max_bytes=self.fmu_max_bytes, max_uncompressed_bytes=self.fmu_max_uncompressed_bytes,
                          max_ratio=self.fmu_max_ratio),
            energyplus=EnergyPlusLimits(max_bytes=self.energyplus_max_bytes),
            mesh=MeshLimits(max_bytes=self.mesh_max_bytes),
        )
