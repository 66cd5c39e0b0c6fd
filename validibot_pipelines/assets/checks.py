"""Asset-check results every validator yields the same way (status checks, CEL assertion tables)."""

import io

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from validibot_pipelines.assertions import AssertionResult, verdict
from validibot_pipelines.assets.metadata import frame_table
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.storage import get_store


def intake_check(record: ModelRecord, check_name: str = "intake_accepted") -> AssetCheckResult:
    errors = [f"[{m.code}] {m.text}" for m in record.findings if m.severity.value == "ERROR"]
    return AssetCheckResult(
        check_name=check_name, passed=record.accepted, severity=AssetCheckSeverity.ERROR,
        description=" ".join(errors)[:2000] or "accepted",
        metadata={"status": record.status.value, "errors": MetadataValue.json(errors)},
    )


def status_check(name: str, out: OutputEnvelope) -> AssetCheckResult:
    errors = [f"[{m.code}] {m.text}" for m in out.errors]
    return AssetCheckResult(
        check_name=name, passed=out.status == Status.SUCCESS, severity=AssetCheckSeverity.ERROR,
        description=" ".join(errors)[:2000] or out.status.value,
        metadata={"status": out.status.value, "errors": MetadataValue.json(errors)},
    )


def assertions_check(results: list[AssertionResult], out: OutputEnvelope,
                     evaluated: bool | None = None) -> AssetCheckResult:
    """One check for all of a spec's assertions (specs differ per partition; checks are static).

    ``evaluated`` says whether the worker produced something to judge; by default only a ``success`` does
    (the meshing validator also judges a mesh that missed its quality targets).
    """
    if not (out.status == Status.SUCCESS if evaluated is None else evaluated):
        return AssetCheckResult(check_name="cel_assertions", passed=False, severity=AssetCheckSeverity.ERROR,
                                description=f"not evaluated: the worker ended {out.status.value}")
    rows = pd.DataFrame([{"name": r.name, "passed": r.passed, "severity": r.severity.value, "expr": r.expr,
                          "message": r.message or "", "error": r.error or ""} for r in results],
                        columns=["name", "passed", "severity", "expr", "message", "error"])
    failed = [r for r in results if not r.passed]
    return AssetCheckResult(
        check_name="cel_assertions", passed=not failed,
        severity=AssetCheckSeverity.ERROR if verdict(results) != Status.SUCCESS else AssetCheckSeverity.WARN,
        description=(f"{len(results) - len(failed)}/{len(results)} assertions passed" if results
                     else "no assertions in the spec"),
        metadata={"assertions": frame_table(rows), "passed": len(results) - len(failed), "failed": len(failed)},
    )


def read_parquet(uri: str) -> pd.DataFrame:
    """Read in memory: a temporary folder per model cost more than the read (its delete alone on ext4 with
    ``discard``), and pandas holds the whole frame in memory anyway."""
    return pd.read_parquet(io.BytesIO(get_store(uri).read_bytes(uri)))
