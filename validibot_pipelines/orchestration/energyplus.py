"""EnergyPlus validator, control-plane side: launch the simulation, evaluate the CEL assertions."""

from __future__ import annotations

from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.assertions import AssertionResult, evaluate_assertions
from validibot_pipelines.envelopes import OutputEnvelope, ValidatorRef
from validibot_pipelines.envelopes.energyplus import EnergyPlusInputs
from validibot_pipelines.orchestration.fmi import step_run_id
from validibot_pipelines.orchestration.launch import Backend, launch_step
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord

VALIDATOR = ValidatorRef(id="energyplus", type="energyplus", version=__version__)


def simulation_inputs(record: ModelRecord, simulation_timeout_seconds: float) -> EnergyPlusInputs:
    spec = record.validation_spec()
    return EnergyPlusInputs(
        weather_name=record.weather_name, timestep_per_hour=spec.timestep_per_hour or 4,
        output_variables=list(spec.outputs or []), simulation_timeout_seconds=simulation_timeout_seconds,
    )


def simulate(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str, simulation_timeout_seconds: float = 1800,
    timeout_seconds: int = 3600, context: Any = None,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    inputs = simulation_inputs(record, simulation_timeout_seconds)
    return launch_step(
        store_uri=store_uri, run_id=step_run_id(record.sha256, "energyplus", attempt), validator=VALIDATOR,
        files=[record.input_file("primary-model"), *record.resources], inputs=inputs.model_dump(mode="json"),
        backend=backend, timeout_seconds=timeout_seconds, context=context, tags={"model_sha256": record.sha256},
    )


def check(record: ModelRecord, simulation: OutputEnvelope) -> list[AssertionResult]:
    """``o`` = metrics (``o.site_eui_kwh_m2``) plus counts and versions; ``i`` = spec inputs; ``p`` = model facts."""
    spec = record.validation_spec()
    if not spec.assertions:
        return []
    outputs = {m.name: m.value for m in simulation.metrics}
    outputs.update({k: v for k, v in simulation.outputs.items()
                    if k in {"version_match", "model_version", "energyplus_version", "weather_file"}})
    return evaluate_assertions(spec.assertions, inputs=dict(spec.inputs), outputs=outputs, probe=record.facts)
