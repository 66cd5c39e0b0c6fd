"""Export the envelopes as JSON Schema, for worker authors in other languages (``validibot schemas DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from validibot_pipelines.envelopes.base import INPUT_SCHEMA, OUTPUT_SCHEMA, InputEnvelope, OutputEnvelope
from validibot_pipelines.validators.fmi.envelopes import (
    FMIProbeInputs,
    FMIProbeOutputs,
    FMISimulationInputs,
    FMISimulationOutputs,
)
from validibot_pipelines.validators.mesh.envelopes import MeshInputs, MeshOutputs, MeshPreviewInputs, MeshPreviewOutputs

SCHEMAS: dict[str, type[BaseModel]] = {
    INPUT_SCHEMA: InputEnvelope,
    OUTPUT_SCHEMA: OutputEnvelope,
    "validibot.fmi.probe.inputs": FMIProbeInputs,
    "validibot.fmi.probe.outputs": FMIProbeOutputs,
    "validibot.fmi.simulation.inputs": FMISimulationInputs,
    "validibot.fmi.simulation.outputs": FMISimulationOutputs,
    "validibot.mesh.preview.inputs": MeshPreviewInputs,
    "validibot.mesh.preview.outputs": MeshPreviewOutputs,
    "validibot.mesh.inputs": MeshInputs,
    "validibot.mesh.outputs": MeshOutputs,
}


def export_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
        written.append(path)
    return written
