"""Test helpers for the compute backends: a pipeline on the GCS emulator, draining Cloud Run stand-in launches."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from tests.conftest import Pipeline
from validibot_pipelines.definitions import build_defs
from validibot_pipelines.envelopes import ExecutionContext, InputEnvelope, ValidatorRef
from validibot_pipelines.local_runner import RunOutcome, tick
from validibot_pipelines.resources.backends.cloudrun import CloudRunJobsBackend
from validibot_pipelines.resources.backends.cloudrun_stand_in import ENV_STATE_DIR, LocalJobRunner
from validibot_pipelines.resources.backends.modal import ModalBackend
from validibot_pipelines.storage import get_store, join_uri

PROJECT = "validibot-test"
# One Cloud Run stand-in state folder per test session (executions are recorded there as JSON).
if ENV_STATE_DIR not in os.environ:
    os.environ[ENV_STATE_DIR] = tempfile.mkdtemp(prefix="validibot-cloudrun-")
    atexit.register(shutil.rmtree, os.environ[ENV_STATE_DIR], ignore_errors=True)


def pipeline_on(instance: DagsterInstance, root: str, backend: object | None = None, **settings: object) -> Pipeline:
    """A Pipeline whose landing zone and store are under ``root`` (gs:// on the emulator), FMI on ``backend``."""
    p = Pipeline(instance, f"{root}/landing", f"{root}/store", **{"simulation_timeout_seconds": 30, **settings})
    p.defs = build_defs(p.settings, fmi_backend=backend)
    return p


def instance_in(tmp_path: Path, name: str):  # noqa: ANN201 - context manager of a DagsterInstance
    """A fresh SQLite Dagster instance under ``tmp_path/name`` (its own run keys, cursors and partitions)."""
    from dagster import instance_for_test

    home = tmp_path / name
    home.mkdir(parents=True, exist_ok=True)
    return instance_for_test(temp_dir=str(home))


def modal_stand_in(volumes: Path, **fields: object) -> ModalBackend:
    return ModalBackend(app_name="validibot-fmi", cache_volume="fmi-cache-test", stand_in_volume_dir=str(volumes),
                        **fields)


def cloudrun_stand_in(job: str = "validibot-fmi") -> CloudRunJobsBackend:
    return CloudRunJobsBackend(project=PROJECT, region="europe-west1", job=job, stand_in=True)


def wait_for_executions() -> None:
    runner = LocalJobRunner.shared()
    for name in runner.names():
        runner.wait(name)


def drain(p: Pipeline, max_ticks: int = 6, log_level: str = "DEBUG") -> list[RunOutcome]:
    """Let every Cloud Run stand-in execution finish, tick the output sensor, repeat until nothing is new."""
    outcomes: list[RunOutcome] = []
    for _ in range(max_ticks):
        wait_for_executions()
        new = tick(p.defs, p.instance, sensor_name="output_sensor", log_level=log_level)
        if not new:
            break
        outcomes += new
    return outcomes


def materializations(p: Pipeline, asset: str, partition: str) -> list:
    records = p.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=100).records
    return [r.asset_materialization for r in records]


def latest(p: Pipeline, asset: str, partition: str):  # noqa: ANN201
    found = materializations(p, asset, partition)
    assert found, f"{asset} was not materialized for {partition}"
    return found[0]


def merged_checks(outcomes: list[RunOutcome], partition: str) -> dict[str, tuple[bool, str]]:
    """Every check result of a partition across its runs (a Cloud Run validation spans several runs)."""
    out: dict[str, tuple[bool, str]] = {}
    for outcome in outcomes:
        if outcome.partition_key == partition:
            out.update(outcome.checks)
    return out


def merged_outputs(outcomes: list[RunOutcome], partition: str) -> dict:
    out: dict = {}
    for outcome in outcomes:
        if outcome.partition_key == partition:
            out.update(outcome.outputs)
    return out


def write_envelope(root: str, run_id: str) -> tuple[InputEnvelope, str]:
    """A minimal fmi-probe input envelope in the bundle ``<root>/runs/<run_id>``: (envelope, its URI)."""
    bundle = join_uri(root, "runs", run_id)
    envelope = InputEnvelope(run_id=run_id, validator=ValidatorRef(id="fmi-probe", type="fmi-probe", version="0"),
                             context=ExecutionContext(callback_id=run_id, execution_bundle_uri=bundle,
                                                      expected_output_uri=join_uri(bundle, "output.json")))
    uri = join_uri(bundle, "input.json")
    get_store(uri).write_bytes(uri, envelope.model_dump_json().encode())
    return envelope, uri


def envelope_of_reference(reference: str) -> str:
    """The canonical input envelope URI a worker reference stands for: itself, or the envelope its signed access
    grant (``orchestration/access.py``) names — read through the signed URL, as the worker reads it."""
    if reference.startswith(("gs://", "s3://", "file://")):
        return reference
    from validibot_pipelines.storage.grant import parse_grant

    grant = parse_grant(get_store(reference).read_bytes(reference))
    assert grant is not None, f"{reference[:120]} is neither an envelope URI nor a grant"
    return grant.envelope_uri
