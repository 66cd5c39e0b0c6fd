"""Pydantic v2 envelopes shared by the control plane and the workers.

This package must never import ``dagster``: workers load it inside isolated containers.
"""

from validibot_pipelines.envelopes.base import (
    ExecutionContext,
    InputEnvelope,
    InputFileItem,
    OrgRef,
    OutputEnvelope,
    Severity,
    Status,
    Timing,
    ValidationArtifact,
    ValidationMessage,
    ValidationMetric,
    ValidatorRef,
    WorkflowRef,
    envelope_sha256,
    load_input_envelope,
    load_output_envelope,
)
from validibot_pipelines.validators.fmi.envelopes import (
    FMIProbeInputs,
    FMIProbeOutputs,
    FMISimulationInputs,
    FMISimulationOutputs,
    SimulationSettings,
)

__all__ = [
    "ExecutionContext",
    "FMIProbeInputs",
    "FMIProbeOutputs",
    "FMISimulationInputs",
    "FMISimulationOutputs",
    "InputEnvelope",
    "InputFileItem",
    "OrgRef",
    "OutputEnvelope",
    "Severity",
    "SimulationSettings",
    "Status",
    "Timing",
    "ValidationArtifact",
    "ValidationMessage",
    "ValidationMetric",
    "ValidatorRef",
    "WorkflowRef",
    "envelope_sha256",
    "load_input_envelope",
    "load_output_envelope",
]
