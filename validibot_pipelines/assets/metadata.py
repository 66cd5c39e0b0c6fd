"""Turn envelopes into the metadata an analyst reads in the Dagster UI (shared by every validator)."""

from __future__ import annotations

import base64
from typing import Any

import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from validibot_pipelines.envelopes import OutputEnvelope, ValidationMessage
from validibot_pipelines.resources.backends.base import LaunchRecord


def frame_table(frame: pd.DataFrame) -> MetadataValue:
    """A pandas DataFrame as Dagster table metadata (types mapped so the UI sorts numbers as numbers)."""
    kinds = {"i": "int", "u": "int", "f": "float", "b": "bool"}
    columns = [TableColumn(name=str(c), type=kinds.get(frame[c].dtype.kind, "string")) for c in frame.columns]
    records = [
        TableRecord({str(k): (None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
                     for k, v in row.items()})
        for row in frame.astype(object).to_dict(orient="records")
    ]
    return MetadataValue.table(records=records, schema=TableSchema(columns=columns))


def metrics_table(out: OutputEnvelope) -> MetadataValue:
    """The envelope's metrics as a table: numbers stay numbers (the UI sorts them); any other value is in
    ``text`` so nothing a worker reported is dropped."""

    rows = []
    for m in out.metrics:
        numeric = isinstance(m.value, int | float) and not isinstance(m.value, bool)
        rows.append({"metric": m.name, "value": float(m.value) if numeric else None,
                     "text": "" if numeric or m.value is None else str(m.value), "unit": m.unit or ""})
    return frame_table(pd.DataFrame(rows, columns=["metric", "value", "text", "unit"]).astype({"value": float}))


def messages_markdown(messages: list[ValidationMessage]) -> MetadataValue:
    if not messages:
        return MetadataValue.md("_no findings_")
    lines = ["| severity | code | text | location |", "|---|---|---|---|"]
    for m in messages:
        text = m.text.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {m.severity.value} | `{m.code}` | {text} | {m.location or ''} |")
    return MetadataValue.md("\n".join(lines))


def launch_metadata(record: LaunchRecord) -> dict[str, Any]:
    """Which backend ran the step, its launch id, what code ran, when, and the worker's last log lines."""
    meta: dict[str, Any] = {
        "backend": record.backend,
        "launch_id": record.launch_id or "(not started)",
        "worker_seconds": MetadataValue.float(record.seconds),
        "worker_exit_code": record.returncode if record.returncode is not None else -1,
    }
    if record.image:
        meta["worker_image"] = record.image
    if record.started_at:
        meta["launched_at"] = record.started_at.isoformat()
    if record.finished_at:
        meta["launch_finished_at"] = record.finished_at.isoformat()
    if record.status:
        meta["launch_status"] = record.status
    if record.error:
        meta["launch_error"] = MetadataValue.md(record.error)
    if "batch_size" in record.details:  # one worker launch served this many models (runtime/batch.py)
        meta["batch_size"] = int(record.details["batch_size"])
    if record.details:
        meta["launch_details"] = MetadataValue.json(dict(record.details))
    if record.log_tail:
        meta["worker_log"] = MetadataValue.md(f"```\n{record.log_tail[-3000:]}\n```")
    return meta


def envelope_metadata(out: OutputEnvelope, bundle_input_uri: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "status": out.status.value,
        "run_id": out.run_id,
        "findings": messages_markdown(out.messages),
    }
    unsandboxed = [m.text for m in out.messages if m.code == "SANDBOX_DISABLED"]
    if unsandboxed:  # the operator's opt-out: said on the asset itself, not only deep in the findings
        meta["sandbox_warning"] = MetadataValue.text(f"WARNING: {unsandboxed[0]}")
    if out.timing.started_at and out.timing.finished_at:
        meta["execution_seconds"] = MetadataValue.float(
            (out.timing.finished_at - out.timing.started_at).total_seconds())
    for artifact in out.artifacts:
        meta[f"artifact_{artifact.name}"] = MetadataValue.url(artifact.uri)
    return meta


def png_markdown(png: bytes, title: str) -> MetadataValue:
    """Embed a small PNG in markdown metadata so the plot shows in the UI without a file server."""
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


# What an analyst came for first (the verdict, what failed, the values and the plot), plumbing last.
_PLUMBING = ("run_id", "backend", "launch_id", "worker_image", "worker_seconds", "worker_exit_code", "launched_at",
             "launch_finished_at", "launch_status", "launch_error", "batch_size", "launch_details", "worker_log",
             "execution_seconds", "source_uri", "canonical_uri", "size_bytes", "file_name", "sha256")
_FIRST = ("outcome", "failed_checks", "failed_assertions", "model", "status", "findings")
_SHOWN = ("plot", "preview")


def outcome_metadata(checks: list[Any], value: dict[str, Any]) -> dict[str, Any]:
    """``outcome`` / ``failed_checks`` / ``failed_assertions`` of one model's step (what the report reads too)."""
    failed = [c.check_name for c in checks if not c.passed and c.severity.value == "ERROR"]
    warned = [c.check_name for c in checks if not c.passed and c.severity.value != "ERROR"]
    assertions = [a.get("name", "?") for a in value.get("assertions", []) or [] if not a.get("passed", True)]
    return {"outcome": "failed" if failed else "passed with warnings" if warned else "passed",
            "failed_checks": ", ".join(failed) or "none",
            "failed_assertions": ", ".join(assertions) or "none"}


def analyst_order(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` reordered: outcome, failures, model and findings, then the plot, the values, then plumbing
    (launch details, artifacts, checksums) — Dagster's UI lists metadata in the order it was recorded."""
    first = {k: meta[k] for k in _FIRST if k in meta}
    shown = {k: meta[k] for k in _SHOWN if k in meta}
    plumbing = {k: v for k, v in meta.items() if k in _PLUMBING or k.startswith("artifact_")}
    values = {k: v for k, v in meta.items() if k not in first and k not in shown and k not in plumbing}
    return {**first, **shown, **values, **plumbing}
