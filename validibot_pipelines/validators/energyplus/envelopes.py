"""Typed EnergyPlus inputs and outputs carried in the envelopes' ``inputs`` / ``outputs`` fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIME_IDF = "application/vnd.energyplus.idf"
MIME_EPJSON = "application/vnd.energyplus.epjson"
MIME_EPW = "application/vnd.energyplus.epw"
MIME_IMF = "application/vnd.energyplus.imf"  # an EPMacro model (``##include`` …), expanded by the worker


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnergyPlusInputs(_Strict):
    """What the worker needs besides the model file (role ``primary-model``) and an uploaded weather file
    (role ``weather``); ``weather_name`` names a weather file shipped with EnergyPlus instead."""

    kind: Literal["energyplus_simulation"] = "energyplus_simulation"
    weather_name: str | None = None
    timestep_per_hour: int | None = Field(default=None, ge=1, le=60)  # None: keep the model's own Timestep
    output_variables: list[str] = Field(default_factory=list)
    simulation_timeout_seconds: float = Field(default=1800, gt=0)
    fail_on_severe: bool = False  # the spec's switch: severe errors of a finished run fail it (else WARNINGs)

    @field_validator("timestep_per_hour")
    @classmethod
    def _divides_hour(cls, value: int | None) -> int | None:
        if value is not None and 60 % value:
            raise ValueError(f"timestep_per_hour must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), "
                             f"got {value}")
        return value


class EnergyPlusOutputs(_Strict):
    energyplus_version: str
    idd_version: str | None
    model_version: str | None
    version_match: bool
    weather_file: str
    return_code: int | None
    completed_successfully: bool
    warning_count: int
    severe_count: int
    fatal_count: int
    metrics: dict[str, float | None]
    stdout_tail: str = ""
    stderr_tail: str = ""
    err_tail: str = ""
    sql_uri: str | None = None
    err_uri: str | None = None
    timeseries_uri: str | None = None
    execution_seconds: float = 0.0


SCHEMAS: dict[str, type[BaseModel]] = {  # exported by `validibot schemas` for worker authors
    "validibot.energyplus.inputs": EnergyPlusInputs,
    "validibot.energyplus.outputs": EnergyPlusOutputs,
}
