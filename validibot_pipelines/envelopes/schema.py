"""Export the envelopes as JSON Schema, for worker authors in other languages (``validibot schemas DIR``)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from pydantic import BaseModel

from validibot_pipelines.envelopes.base import INPUT_SCHEMA, OUTPUT_SCHEMA, InputEnvelope, OutputEnvelope
from validibot_pipelines.validators import REGISTERED


def _schemas() -> dict[str, type[BaseModel]]:
    """The two envelopes plus every registered validator's inputs/outputs (its ``envelopes.SCHEMAS``)."""
    schemas: dict[str, type[BaseModel]] = {INPUT_SCHEMA: InputEnvelope, OUTPUT_SCHEMA: OutputEnvelope}
    for name in REGISTERED:
        schemas.update(importlib.import_module(f"validibot_pipelines.validators.{name}.envelopes").SCHEMAS)
    return schemas


SCHEMAS = _schemas()


def export_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
        written.append(path)
    return written
