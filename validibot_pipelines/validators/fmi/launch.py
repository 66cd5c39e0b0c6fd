"""FMI validator, control-plane side: launch the probe and the simulation, evaluate the CEL assertions.

Before the simulation is launched its side files (the spec's ``input_timeseries`` CSV) are checked in the
control plane (:mod:`validibot_pipelines.validators.fmi.timeseries`): a CSV the worker's parser would choke on is a
``failed_validation`` naming the file, not gigabytes of memory in the worker.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.assertions import AssertionResult, evaluate_assertions
from validibot_pipelines.assertions.cel import ExactInt, ExactUint
from validibot_pipelines.envelopes import OutputEnvelope, Severity, Status, ValidationMessage, ValidatorRef
from validibot_pipelines.intake.sidefiles import check_stored_side_files
from validibot_pipelines.orchestration.launch import (
    Backend,
    launch_step,
    model_run_id,
    model_tags,
    rejected_before_launch,
    step_settings,
)
from validibot_pipelines.orchestration.layout import bundle_uri
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.fmi.envelopes import FMISimulationInputs, ReferenceComparison
from validibot_pipelines.validators.fmi.timeseries import TIMESERIES_ROLE, TimeseriesLimits, side_file_checks

PROBE_VALIDATOR = ValidatorRef(id="fmi-probe", type="fmi-probe", version=__version__)
SIMULATION_VALIDATOR = ValidatorRef(id="fmi-simulation", type="fmi-simulation", version=__version__)




def probe(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str, timeout_seconds: int = 3600,
    context: Any = None,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    return launch_step(
        store_uri=store_uri, run_id=model_run_id(record, "probe", attempt), validator=PROBE_VALIDATOR,
        files=[record.input_file("fmu")], inputs={"kind": "fmi_probe"}, backend=backend,
        timeout_seconds=timeout_seconds, context=context, tags=model_tags(record),
    )


def simulation_inputs(record: ModelRecord, simulation_timeout_seconds: float,
                      plot: bool = False) -> FMISimulationInputs:
    spec = record.validation_spec()
    series = [r.uri for r in record.resources if r.role == TIMESERIES_ROLE]
    return FMISimulationInputs(
        input_values=spec.inputs, simulation=spec.simulation, output_variables=spec.outputs or None,
        simulation_timeout_seconds=simulation_timeout_seconds, input_timeseries_uri=series[0] if series else None,
        reference=spec.reference, plot=plot,
    )






def probed_inputs(record: ModelRecord, store_uri: str, attempt: str,
                  probe_out: OutputEnvelope | None = None) -> Collection[str] | None:
    """Names the FMU accepts from an input time series (causality input, or tunable), from the probe.

    ``probe_out`` is the probe's envelope when the caller has it (the asset's upstream value: also a replayed
    probe, which wrote no bundle of this run); else this run's probe bundle is read. ``None`` when neither
    exists (e.g. only the simulation was re-run); the column names are then left to the worker.
    """
    if probe_out is None:
        uri = join_uri(bundle_uri(store_uri, model_run_id(record, "probe", attempt)), "output.json")
        store = get_store(uri)
        try:
            probe_out = OutputEnvelope.model_validate_json(store.read_bytes(uri)) if store.exists(uri) else None
        except ValueError:  # a malformed probe output (EnvelopeError, pydantic) is the probe step's to report
            return None
    if probe_out is None or probe_out.status != Status.SUCCESS or "variables" not in probe_out.outputs:
        return None
    return {v["name"] for v in probe_out.outputs["variables"]
            if v.get("causality") == "input" or v.get("variability") == "tunable"}


def simulate(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str, simulation_timeout_seconds: float = 300,
    timeout_seconds: int = 3600, context: Any = None, limits: TimeseriesLimits | None = None,
    probe_out: OutputEnvelope | None = None, plot: bool = False,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    """Launch the simulation; ``plot``: the worker also draws the result plot (the assets show it)."""
    run_id = model_run_id(record, "simulation", attempt)
    series = [r for r in record.resources if r.role == TIMESERIES_ROLE]
    if series:
        checks = side_file_checks(limits or TimeseriesLimits.from_settings(step_settings(context)),
                                  probed_inputs(record, store_uri, attempt, probe_out))
        problems = check_stored_side_files(series, checks, record.file_name)
        if problems:
            return rejected_before_launch(run_id, SIMULATION_VALIDATOR, problems)
    inputs = simulation_inputs(record, simulation_timeout_seconds, plot)
    return launch_step(
        store_uri=store_uri, run_id=run_id, validator=SIMULATION_VALIDATOR,
        files=[record.input_file("fmu"), *record.resources],
        inputs=inputs.model_dump(mode="json"),
        backend=backend, timeout_seconds=timeout_seconds, context=context, tags=model_tags(record),
    )


def _exact(value: Any, value_type: str | None) -> Any:
    """64-bit integer outputs (scalars or arrays) marked so CEL binds them as exact int/uint, not double."""
    wrap = {"Int64": ExactInt, "UInt64": ExactUint}.get(value_type or "")
    if wrap is None:
        return value
    if isinstance(value, list):
        return [_exact(v, value_type) for v in value]
    return wrap(value) if isinstance(value, int) and not isinstance(value, bool) else value


def check(record: ModelRecord, simulation: OutputEnvelope, probe_out: OutputEnvelope) -> list[AssertionResult]:
    """Evaluate the spec's assertions: ``i`` = spec inputs, ``o`` = output values, ``p`` = probe facts."""
    spec = record.validation_spec()
    if not spec.assertions:
        return []
    types = {v["name"]: v.get("value_type") for v in probe_out.outputs.get("variables", [])}
    outputs = {k: _exact(v, types.get(k)) for k, v in simulation.outputs.get("output_values", {}).items()}
    outputs.update({m.name: m.value for m in simulation.metrics if m.name not in outputs})
    probe_facts = {k: v for k, v in probe_out.outputs.items() if k != "variables"}
    probe_facts["variables"] = {v["name"]: v for v in probe_out.outputs.get("variables", [])}
    return evaluate_assertions(spec.assertions, inputs=dict(spec.inputs), outputs=outputs, probe=probe_facts)


def apply_reference(out: OutputEnvelope, sim_out: OutputEnvelope, file_name: str) -> None:
    """A result outside the spec's reference band makes the run failed_validation, naming the signals."""
    comparison = sim_out.outputs.get("reference")
    if comparison is None:
        return
    result = ReferenceComparison.model_validate(comparison)
    if not result.passed:
        out.messages.append(ValidationMessage(
            severity=Severity.ERROR, code="REFERENCE_MISMATCH", location=result.file,
            text=f"{file_name}: the result does not match {result.file} within "
                 f"tolerance {result.tolerance:g}: {result.summary()}"))
        out.status = Status.FAILED_VALIDATION


def validate_in_process(record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str,
                        simulation_timeout_seconds: float = 300) -> OutputEnvelope:
    """``validibot validate``: probe, then (if approved) simulate, assertions and the reference comparison."""
    from validibot_pipelines.orchestration.single import apply_assertions, merge

    probe_out, _ = probe(record, store_uri=store_uri, backend=backend, attempt=attempt)
    if probe_out.status != Status.SUCCESS:
        return merge(record, probe_out)
    sim_out, _ = simulate(record, store_uri=store_uri, backend=backend, attempt=attempt,
                          simulation_timeout_seconds=simulation_timeout_seconds, probe_out=probe_out)
    result = merge(record, sim_out, probe_out)
    if sim_out.status == Status.SUCCESS:
        apply_assertions(result, check(record, sim_out, probe_out))
        apply_reference(result, sim_out, record.file_name)
    return result


def summary(out: OutputEnvelope) -> list[str]:
    """``validibot validate``'s lines for an FMU: the probed model and the last output values."""
    lines = []
    probe_facts = out.outputs.get("probe")
    if probe_facts:
        lines.append(f"  model: {probe_facts.get('model_name')} (FMI {probe_facts.get('fmi_version')}), "
                     f"counts {probe_facts.get('counts')}")
    values = out.outputs.get("output_values")
    if values:
        lines.append("  outputs: " + ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in values.items()))
    return lines
