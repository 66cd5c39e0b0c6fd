"""Pydantic v2 envelopes shared by the control plane and the workers.

This package must never import ``dagster``: workers load it inside isolated containers. Each validator's own
inputs/outputs live in its folder (``validators/<name>/envelopes.py``).
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

__all__ = [
    "ExecutionContext",
    "InputEnvelope",
    "InputFileItem",
    "OrgRef",
    "OutputEnvelope",
    "Severity",
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
