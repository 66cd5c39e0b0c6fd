"""FMI validator, control-plane side: launch the probe and the simulation, evaluate the CEL assertions."""

from __future__ import annotations

from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.assertions import AssertionResult, evaluate_assertions
from validibot_pipelines.envelopes import FMISimulationInputs, OutputEnvelope, ValidatorRef
from validibot_pipelines.orchestration.launch import Backend, launch_step
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord

PROBE_VALIDATOR = ValidatorRef(id="fmi-probe", type="fmi-probe", version=__version__)
SIMULATION_VALIDATOR = ValidatorRef(id="fmi-simulation", type="fmi-simulation", version=__version__)


def step_run_id(sha256: str, step: str, attempt: str) -> str:
    """Execution bundle name: readable, unique per Dagster run, stable across retries of the same run."""
    return f"{sha256[:16]}-{step}-{attempt}"


def probe(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str, timeout_seconds: int = 3600,
    context: Any = None,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    return launch_step(
        store_uri=store_uri, run_id=step_run_id(record.sha256, "probe", attempt), validator=PROBE_VALIDATOR,
        files=[record.input_file("fmu")], inputs={"kind": "fmi_probe"}, backend=backend,
        timeout_seconds=timeout_seconds, context=context, tags={"model_sha256": record.sha256},
    )


def simulation_inputs(record: ModelRecord, simulation_timeout_seconds: float) -> FMISimulationInputs:
    spec = record.validation_spec()
    series = [r.uri for r in record.resources if r.role == "input-timeseries"]
    return FMISimulationInputs(
        input_values=spec.inputs, simulation=spec.simulation, output_variables=spec.outputs or None,
        simulation_timeout_seconds=simulation_timeout_seconds, input_timeseries_uri=series[0] if series else None,
    )


def simulate(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str, simulation_timeout_seconds: float = 300,
    timeout_seconds: int = 3600, context: Any = None,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    inputs = simulation_inputs(record, simulation_timeout_seconds)
    return launch_step(
        store_uri=store_uri, run_id=step_run_id(record.sha256, "simulation", attempt),
        validator=SIMULATION_VALIDATOR, files=[record.input_file("fmu"), *record.resources],
        inputs=inputs.model_dump(mode="json"),
        backend=backend, timeout_seconds=timeout_seconds, context=context, tags={"model_sha256": record.sha256},
    )


def check(record: ModelRecord, simulation: OutputEnvelope, probe_out: OutputEnvelope) -> list[AssertionResult]:
    """Evaluate the spec's assertions: ``i`` = spec inputs, ``o`` = output values, ``p`` = probe facts."""
    spec = record.validation_spec()
    if not spec.assertions:
        return []
    outputs = dict(simulation.outputs.get("output_values", {}))
    outputs.update({m.name: m.value for m in simulation.metrics if m.name not in outputs})
    probe_facts = {k: v for k, v in probe_out.outputs.items() if k != "variables"}
    probe_facts["variables"] = {v["name"]: v for v in probe_out.outputs.get("variables", [])}
    return evaluate_assertions(spec.assertions, inputs=dict(spec.inputs), outputs=outputs, probe=probe_facts)
