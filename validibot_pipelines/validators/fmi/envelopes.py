"""Typed FMI inputs and outputs carried in the envelopes' ``inputs`` / ``outputs`` fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MIME_FMU = "application/vnd.fmi.fmu"

Interface = Literal["co_simulation", "model_exchange"]
Solver = Literal["cvode", "euler"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulationSettings(_Strict):
    """Experiment settings; ``None`` means "take it from the FMU's DefaultExperiment"."""

    start_time: float | None = Field(default=None, ge=0)
    stop_time: float | None = None
    step_size: float | None = Field(default=None, gt=0)
    tolerance: float | None = Field(default=None, gt=0)
    #: ``None``: Co-Simulation when the FMU offers it, else Model Exchange (what fmpy's own default does).
    interface: Interface | None = None
    #: Model Exchange only: fmpy's solvers, CVode (variable step, the default) or Euler (fixed ``step_size``).
    solver: Solver | None = None

    @field_validator("interface", "solver", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # "CVode", "Model-Exchange", "co-simulation" are how people write them.
        return value.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _stop_after_start(self) -> SimulationSettings:
        if self.stop_time is not None and self.stop_time <= (self.start_time or 0.0):
            raise ValueError(f"stop_time ({self.stop_time}) must be greater than start_time ({self.start_time or 0})")
        if self.solver is not None and self.interface == "co_simulation":
            raise ValueError("solver applies to interface model_exchange only (a co-simulation FMU brings its own)")
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
    dimensions: list[int] | None = None  # FMI 3 arrays: the size of each dimension (structural parameters resolved)


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
    supports_model_exchange: bool = False
    supports_scheduled_execution: bool = False
    interfaces: list[str] = Field(default_factory=list)  # co_simulation, model_exchange, scheduled_execution
    variables: list[FMIVariable]
    default_experiment: DefaultExperiment
    counts: dict[str, int]
    approved: bool


class ReferenceSettings(_Strict):
    """How closely the simulation must follow a reference result (the FMI Cross-Check convention).

    ``tolerance`` is fmpy's band half-height as a fraction of each reference signal's range
    (``fmpy.util.validate_signal(dy=…)``; the band is also ``dx`` samples wide, fmpy's default 20 of 1000), and
    ``max_outliers`` the fraction of result samples allowed outside it (0: none, as the cross-check rules ask).
    """

    file: str = Field(min_length=1)
    tolerance: float = Field(default=0.1, gt=0, le=1)
    max_outliers: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _file_shorthand(cls, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value


class SignalComparison(_Strict):
    name: str
    samples: int
    outliers: int
    fraction_outside: float
    passed: bool


class ReferenceComparison(_Strict):
    """The result against the reference: per signal, how many samples left the tolerance band."""

    file: str
    tolerance: float
    max_outliers: float
    signals: list[SignalComparison]
    missing: list[str] = Field(default_factory=list)  # reference signals the simulation did not record
    passed: bool

    def summary(self) -> str:
        outside = [f"{s.name} ({s.outliers} of {s.samples} samples outside)" for s in self.signals if not s.passed]
        parts = ([f"outside the tolerance band: {', '.join(outside)}"] if outside else []) + (
            [f"not in the result: {', '.join(self.missing)} (name them in outputs)"] if self.missing else [])
        return "; ".join(parts) or f"all {len(self.signals)} signal(s) within the band"


class FMISimulationInputs(_Strict):
    kind: Literal["fmi_simulation"] = "fmi_simulation"
    input_values: dict[str, float | int | bool | str] = Field(default_factory=dict)
    input_timeseries_uri: str | None = None
    simulation: SimulationSettings = Field(default_factory=SimulationSettings)
    output_variables: list[str] | None = None  # None: every causality=output variable
    simulation_timeout_seconds: float = Field(default=300, gt=0)
    reference: ReferenceSettings | None = None  # the file itself is staged with role "reference"
    #: Draw the result plot in the worker (``plot.png`` in the bundle): the Dagster assets ask for it, ``validibot
    #: validate`` does not (it shows no plot, and drawing costs ~25 ms a model).
    plot: bool = False


class FMISimulationOutputs(_Strict):
    #: Last value per output: numbers exact (64-bit integers too), arrays as (nested) lists, strings, binaries
    #: as hex strings; ``None`` when the FMU could not give it.
    output_values: dict[str, Any]
    timeseries_uri: str | None
    fmu_guid: str
    fmi_version: str
    model_name: str
    execution_seconds: float
    simulation_time_reached: float | None
    fmu_log: list[str] = Field(default_factory=list)
    interface: Interface = "co_simulation"
    solver: Solver | None = None
    not_recorded: list[str] = Field(default_factory=list)  # outputs fmpy cannot record over time (String, …)
    build_log: str | None = None  # a source FMU compiled in the worker: the compiler's words
    reference: ReferenceComparison | None = None
    plot_uri: str | None = None  # the result plot (PNG) the worker drew, when the inputs asked for one


SCHEMAS: dict[str, type[BaseModel]] = {  # exported by `validibot schemas` for worker authors
    "validibot.fmi.probe.inputs": FMIProbeInputs,
    "validibot.fmi.probe.outputs": FMIProbeOutputs,
    "validibot.fmi.simulation.inputs": FMISimulationInputs,
    "validibot.fmi.simulation.outputs": FMISimulationOutputs,
}
