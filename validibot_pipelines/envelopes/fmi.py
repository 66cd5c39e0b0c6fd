"""Typed FMI inputs and outputs carried in the envelopes' ``inputs`` / ``outputs`` fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulationSettings(_Strict):
    """Experiment settings; ``None`` means "take it from the FMU's DefaultExperiment"."""

    start_time: float | None = Field(default=None, ge=0)
    stop_time: float | None = None
    step_size: float | None = Field(default=None, gt=0)
    tolerance: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _stop_after_start(self) -> SimulationSettings:
        if self.stop_time is not None and self.stop_time <= (self.start_time or 0.0):
            raise ValueError(f"stop_time ({self.stop_time}) must be greater than start_time ({self.start_time or 0})")
        return self


class FMIProbeInputs(_Strict):
    kind: Literal["fmi_probe"] = "fmi_probe"


class FMIVariable(_Strict):
    name: str
    causality: str
    variability: str | None = None
    value_reference: int
    value_type: Literal["Real", "Integer", "Boolean", "String", "Enumeration", "Float64", "Float32",
                        "Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Binary",
                        "Clock"]
    unit: str | None = None
    start: Any = None


class DefaultExperiment(_Strict):
    start_time: float | None = None
    stop_time: float | None = None
    step_size: float | None = None
    tolerance: float | None = None


class FMIProbeOutputs(_Strict):
    fmi_version: str
    model_name: str
    guid: str
    supports_co_simulation: bool
    variables: list[FMIVariable]
    default_experiment: DefaultExperiment
    counts: dict[str, int]
    approved: bool


class FMISimulationInputs(_Strict):
    kind: Literal["fmi_simulation"] = "fmi_simulation"
    input_values: dict[str, float | int | bool | str] = Field(default_factory=dict)
    input_timeseries_uri: str | None = None
    simulation: SimulationSettings = Field(default_factory=SimulationSettings)
    output_variables: list[str] | None = None  # None: every causality=output variable
    simulation_timeout_seconds: float = Field(default=300, gt=0)


class FMISimulationOutputs(_Strict):
    output_values: dict[str, float | int | bool | str | None]
    timeseries_uri: str | None
    fmu_guid: str
    fmi_version: str
    model_name: str
    execution_seconds: float
    simulation_time_reached: float | None
    fmu_log: list[str] = Field(default_factory=list)
