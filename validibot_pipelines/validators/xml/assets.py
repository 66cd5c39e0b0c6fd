"""XML validator assets: xml_file → xml_schema_validation, with asset checks.

* ``xml_file``: control-plane intake (size, well-formedness, no DTD/entities, depth and element caps, the schema
  resolved and checked), canonical copy by checksum. Blocking check ``intake_accepted``.
* ``xml_schema_validation``: lxml's XSD validation in the sandbox on the isolated worker; findings with line and
  column as a table; checks ``schema_valid`` and ``cel_assertions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from dagster import MetadataValue

from validibot_pipelines.assets.backend_step import StepEnv, WorkerStep, worker_step_asset
from validibot_pipelines.assets.batch import ModelResult
from validibot_pipelines.assets.checks import assertions_check, status_check
from validibot_pipelines.assets.intake import intake_asset
from validibot_pipelines.assets.metadata import frame_table
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.validators.xml import launch as xml
from validibot_pipelines.validators.xml.partitions import xml_partitions

GROUP = "xml"
FINDING_COLUMNS = ["line", "column", "level", "message", "path"]

xml_file = intake_asset(GROUP, "xml_file", partitions_def=xml_partitions, kinds={"xml"}, description="The uploaded "
                        "XML model, checked in the control plane (no DTDs or entities) and stored by checksum.",
                        fact_keys=("root_element", "namespace", "element_count", "schema_location"),
                        accepted_means="well-formed, no DTD/entities, within the caps; its schema found and checked")


def _present(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope, meta: dict[str, Any]) -> ModelResult:
    o = out.outputs
    if o:
        meta.update({
            "root_element": o["root_element"], "namespace": o.get("namespace") or "none",
            "schema": o["schema_name"], "validation_mode": o["validation_mode"], "valid": o["valid"],
            "error_count": o["error_count"], "warning_count": o["warning_count"],
            "element_count": o["element_count"],
            "findings": frame_table(pd.DataFrame(o["findings"], columns=FINDING_COLUMNS)),
        })
        if o.get("findings_truncated"):
            meta["findings_note"] = MetadataValue.text(f"the first {len(o['findings'])} findings are listed")
    results = xml.check(record, out) if out.status == Status.SUCCESS else []
    value = {**out.model_dump(mode="json"), "assertions": [r.model_dump(mode="json") for r in results]}
    return ModelResult(value, meta, [status_check("schema_valid", out), assertions_check(results, out)])


def _launch(record: ModelRecord, _up: Mapping[str, Any], env: StepEnv) -> tuple[OutputEnvelope | None, LaunchRecord]:
    return xml.validate_schema(record, validation_timeout_seconds=env.settings.xml_timeout_seconds, **env.launch_args)


xml_schema_validation = worker_step_asset(WorkerStep(
    "xml_schema_validation", GROUP, xml_partitions, {"xml"}, upstream=("xml_file",), checks={
        "schema_valid": "the model validates against its XSD (lenient mode: violations are warnings)",
        "cel_assertions": "the spec's CEL assertions over o (counts, verdict), i (inputs), p (document facts)"},
    launch=_launch, present=_present,
    description="lxml's XSD validation of the model in the sandbox: verdict, counts and findings with line/column."))

ASSETS = [xml_file, xml_schema_validation]
