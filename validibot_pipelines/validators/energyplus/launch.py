"""EnergyPlus validator, control-plane side: launch the simulation, evaluate the CEL assertions.

An uploaded weather file is checked in the control plane before the launch (:mod:`.weather`: size cap, EPW
header and rows, read line by line), so garbage or a huge file is a ``failed_validation`` naming it rather
than an EnergyPlus crash or a worker out of memory.
"""

from __future__ import annotations

from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.assertions import AssertionResult, evaluate_assertions
from validibot_pipelines.envelopes import OutputEnvelope, ValidatorRef
from validibot_pipelines.intake.sidefiles import check_stored_side_files
from validibot_pipelines.orchestration.launch import (
    Backend,
    launch_step,
    model_run_id,
    model_tags,
    rejected_before_launch,
    step_settings,
)
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.validators.energyplus.envelopes import EnergyPlusInputs
from validibot_pipelines.validators.energyplus.weather import WeatherLimits, side_file_checks

VALIDATOR = ValidatorRef(id="energyplus", type="energyplus", version=__version__)


def simulation_inputs(record: ModelRecord, simulation_timeout_seconds: float) -> EnergyPlusInputs:
    spec = record.validation_spec()
    return EnergyPlusInputs(
        weather_name=record.weather_name, timestep_per_hour=spec.timestep_per_hour,
        output_variables=list(spec.outputs or []), simulation_timeout_seconds=simulation_timeout_seconds,
        fail_on_severe=bool(spec.fail_on_severe),
    )


def simulate(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str, simulation_timeout_seconds: float = 1800,
    timeout_seconds: int = 3600, context: Any = None, limits: WeatherLimits | None = None,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    run_id = model_run_id(record, "energyplus", attempt)
    if record.resources:
        checks = side_file_checks(limits or WeatherLimits.from_settings(step_settings(context)))
        problems = check_stored_side_files(record.resources, checks, record.file_name)
        if problems:
            return rejected_before_launch(run_id, VALIDATOR, problems)
    inputs = simulation_inputs(record, simulation_timeout_seconds)
    return launch_step(
        store_uri=store_uri, run_id=run_id, validator=VALIDATOR,
        files=[record.input_file("primary-model"), *record.resources], inputs=inputs.model_dump(mode="json"),
        backend=backend, timeout_seconds=timeout_seconds, context=context, tags=model_tags(record),
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


def validate_in_process(record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str,
                        simulation_timeout_seconds: float = 1800) -> OutputEnvelope:
    """``validibot validate``: the simulation, then the assertions."""
    from validibot_pipelines.orchestration.single import judged

    # --timeout reaches the run: the worker stops EnergyPlus at min(simulation timeout, container timeout)
    out, _ = simulate(record, store_uri=store_uri, backend=backend, attempt=attempt,
                      simulation_timeout_seconds=simulation_timeout_seconds)
    return judged(record, out, check)


def summary(out: OutputEnvelope) -> list[str]:
    """``validibot validate``'s lines for a building model: engine and model versions, weather, metrics."""
    metrics = out.outputs.get("metrics")
    if not metrics:
        return []
    return [f"  EnergyPlus {out.outputs.get('energyplus_version')} (model Version "
            f"{out.outputs.get('model_version')}), weather {out.outputs.get('weather_file')}",
            "  metrics: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items() if isinstance(v, float))]
