"""``validibot prune``: old execution bundles go, on file://, gs:// (gcp-storage-emulator) and s3:// (moto);
canonical model copies, uncollected launches, bundles maybe still running and the replay index's consistency
are never sacrificed.

The store is laid out by the project's own writers (input envelopes, ``remember`` for the replay index, the
Cloud Run backend's ``launches/`` marker path). Object ages cannot be set on the emulators (nor on a local
file, whose ctime always moves), so "31 days later" is a ``now_ns`` passed to the planner; the CLI runs with
the real clock.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from validibot_pipelines.cli import main
from validibot_pipelines.envelopes import (
    ExecutionContext,
    InputEnvelope,
    InputFileItem,
    OutputEnvelope,
    Status,
    ValidatorRef,
)
from validibot_pipelines.operations.retention import execute, parse_age, plan_prune, report_lines
from validibot_pipelines.orchestration.launch import envelope_identity, remember, replay
from validibot_pipelines.orchestration.layout import bundle_uri, launch_marker_uri, model_dir, result_index_uri
from validibot_pipelines.storage import get_store, join_uri

DAY_NS = 86400 * 10**9
MODEL = b"PK\x03\x04 not really an fmu, only bytes to store"
SHA = hashlib.sha256(MODEL).hexdigest()
VALIDATOR = ValidatorRef(id="fmi-simulation", type="fmi-simulation", version="1")


def _write(uri: str, data: bytes) -> None:
    get_store(uri).write_bytes(uri, data, "application/json")


def _bundle(store: str, run_id: str, *, output: bool, timeout: int = 3600, inputs: dict | None = None) -> InputEnvelope:
    """A bundle as launch_step leaves it: input.json, and (when the worker finished) output.json + artifacts;
    a verdict is indexed by ``remember`` exactly as the control plane does after reading it."""
    bundle = bundle_uri(store, run_id)
    model_uri = join_uri(model_dir(store, SHA), "model.fmu")
    envelope = InputEnvelope(
        run_id=run_id, validator=VALIDATOR, inputs=inputs or {"run": run_id},
        input_files=[InputFileItem(name="model.fmu", mime_type="application/vnd.fmi.fmu", role="fmu",
                                   uri=model_uri, size_bytes=len(MODEL), sha256=SHA)],
        context=ExecutionContext(callback_id=run_id, execution_bundle_uri=bundle, timeout_seconds=timeout,
                                 expected_output_uri=join_uri(bundle, "output.json")))
    _write(join_uri(bundle, "input.json"), envelope.model_dump_json().encode())
    if output:
        out = OutputEnvelope(run_id=run_id, validator=VALIDATOR, status=Status.SUCCESS)
        _write(envelope.context.expected_output_uri, out.model_dump_json().encode())
        _write(join_uri(bundle, "artifacts", "timeseries.parquet"), b"PAR1 series")
        remember(store, envelope, out)
    return envelope


def _mark_pending(bundle: str) -> None:
    """The ``launches/<run_id>.json`` marker the Cloud Run backend writes before ``run_job``."""
    _write(launch_marker_uri(bundle), json.dumps({"bundle": bundle}).encode())


def _keys(store: str) -> set[str]:
    return {info.uri[len(store) + 1:] for info in get_store(store + "/x").list(store)}


@pytest.fixture
def laid_out(store_root: str) -> dict[str, InputEnvelope]:
    store = store_root
    _write(join_uri(model_dir(store, SHA), "model.fmu"), MODEL)  # the canonical copy every bundle names
    _write(join_uri(store, "catalog", "m.fmu.json"), b'{"sha256": "%s"}' % SHA.encode())
    made = {
        "collected": _bundle(store, "collected", output=True),
        "output-not-collected": _bundle(store, "output-not-collected", output=True),
        "running-async": _bundle(store, "running-async", output=False),
        "maybe-running": _bundle(store, "maybe-running", output=False, timeout=60 * 86400),
        "died": _bundle(store, "died", output=False),
    }
    _mark_pending(made["output-not-collected"].context.execution_bundle_uri)
    _mark_pending(made["running-async"].context.execution_bundle_uri)
    # An index entry whose bundle is already gone (pruned by hand, say): inconsistent, removed too.
    _write(result_index_uri(store, "f" * 64), json.dumps(
        {"identity": "f" * 64, "output_uri": join_uri(bundle_uri(store, "gone"), "output.json")}).encode())
    return made


def test_prune_removes_old_collected_bundles_and_nothing_that_is_still_needed(store_root, laid_out):  # noqa: ANN001
    store = store_root
    before = _keys(store)
    later = time.time_ns() + 31 * DAY_NS
    plan = plan_prune(store, timedelta(days=30), now_ns=later)
    decisions = {d.bundle.run_id: d for d in plan.decisions}
    assert {r for r, d in decisions.items() if d.remove} == {"collected", "died"}
    assert "not been collected" in decisions["output-not-collected"].reason
    assert "not been collected" in decisions["running-async"].reason
    assert "within its timeout" in decisions["maybe-running"].reason

    collected = laid_out["collected"]
    index_entry = result_index_uri(store, envelope_identity(collected))
    assert decisions["collected"].bundle.index_entries == [index_entry]
    assert replay(store, collected) is not None  # the verdict is replayable before the prune

    # A dry run prints the plan and deletes nothing.
    lines = report_lines(plan, dry_run=True)
    assert any(line.startswith(f"would remove {bundle_uri(store, 'collected')}/") and index_entry in line
               for line in lines), lines
    assert _keys(store) == before

    deleted = execute(plan)
    after = _keys(store)
    assert not any(k.startswith(("runs/collected/", "runs/died/")) for k in after)
    assert set(deleted) == {f"{store}/{k}" for k in before - after}
    # Never deleted: the canonical model copy and catalog, uncollected / maybe running bundles, their markers.
    for kept in (f"models/{SHA}/model.fmu", "catalog/m.fmu.json", "runs/output-not-collected/output.json",
                 "runs/output-not-collected/artifacts/timeseries.parquet", "runs/running-async/input.json",
                 "runs/maybe-running/input.json", "launches/output-not-collected.json", "launches/running-async.json"):
        assert kept in after, kept
    # The index stays consistent: the pruned verdict's entry went with its bundle (replay launches again), the
    # dangling one is gone, the uncollected bundle's own entry is untouched.
    assert f"results/{'f' * 64}.json" not in after
    assert not get_store(index_entry).exists(index_entry)
    assert replay(store, collected) is None
    uncollected = result_index_uri(store, envelope_identity(laid_out["output-not-collected"]))
    assert replay(store, laid_out["output-not-collected"]) is not None and get_store(uncollected).exists(uncollected)


def test_prune_cli_keeps_young_bundles_and_dry_run_deletes_nothing(store_root, laid_out, capsys):  # noqa: ANN001
    store = store_root
    before = _keys(store)
    assert main(["prune", "--older-than", "30d", "--store", store]) == 0  # everything is minutes old
    out = capsys.readouterr().out
    assert "0 bundle(s) removed" in out and "5 younger than 30 days" in out
    assert _keys(store) == before - {f"results/{'f' * 64}.json"}  # only the dangling index entry went

    assert main(["prune", "--older-than", "0s", "--dry-run", "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"would remove {bundle_uri(store, 'collected')}/" in out
    assert "kept" in out and "launches/running-async.json" in out
    assert f"would remove {bundle_uri(store, 'died')}/" not in out  # no output and still within its timeout
    assert _keys(store) == before - {f"results/{'f' * 64}.json"}

    assert main(["prune", "--older-than", "0s", "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"removed {bundle_uri(store, 'collected')}/" in out
    after = _keys(store)
    assert "runs/collected/output.json" not in after and "runs/died/input.json" in after
    assert f"models/{SHA}/model.fmu" in after and "runs/output-not-collected/output.json" in after


def test_prune_on_file_store_leaves_no_empty_bundle_folders(local_root):  # noqa: ANN001
    _bundle(local_root, "collected", output=True)
    execute(plan_prune(local_root, timedelta(0), now_ns=time.time_ns() + DAY_NS))
    runs = Path(local_root.removeprefix("file://")) / "runs"
    assert not (runs / "collected").exists()


def test_parse_age_and_bad_ages(capsys):  # noqa: ANN001
    assert parse_age("30d") == timedelta(days=30) and parse_age("12h") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90) and parse_age("2w") == timedelta(weeks=2)
    assert main(["prune", "--older-than", "thirty days", "--store", "file:///nonexistent"]) == 2
    assert "use a number with a unit" in capsys.readouterr().err


def test_gcs_lifecycle_rule_deletes_only_bundles_after_30_days():
    """deploy/gcs-lifecycle.json is the JSON API's lifecycle document (the field names google-cloud-storage
    itself writes for a delete rule), limited to ``runs/``: canonical models and the index are never aged out."""
    from google.cloud.storage.bucket import LifecycleRuleDelete

    document = json.loads((Path(__file__).resolve().parents[1] / "deploy" / "gcs-lifecycle.json").read_text())
    assert document == {"rule": [dict(LifecycleRuleDelete(age=30, matches_prefix=["runs/"]))]}


def test_a_bundle_relaunched_while_pruning_is_left_alone(local_root):  # noqa: ANN001
    """Between plan and delete, a retried asynchronous launch writes its marker: the bundle stays."""
    envelope = _bundle(local_root, "relaunched", output=True)
    plan = plan_prune(local_root, timedelta(days=30), now_ns=time.time_ns() + 31 * DAY_NS)
    assert [d.bundle.run_id for d in plan.removed] == ["relaunched"]
    _mark_pending(envelope.context.execution_bundle_uri)
    deleted = execute(plan)
    assert "runs/relaunched/output.json" in _keys(local_root) and not deleted
    assert any("a launch marker appeared" in line for line in report_lines(plan, dry_run=False, deleted=deleted))


def test_prune_after_a_real_pipeline_run_keeps_models_and_replay_consistent(pipeline, sample_fmus, sample_specs):  # noqa: ANN001
    """Bundles and index written by a real Dagster run (local backend): pruned together, the canonical copy and
    catalog kept; re-validating then launches the worker again instead of replaying from a missing bundle."""
    from validibot_pipelines.local_runner import run_partition

    store = pipeline.store_uri
    pipeline.drop(sample_fmus["first_order_lag"], spec=sample_specs / "first_order_lag.validation.yaml")
    (outcome,) = pipeline.tick()
    assert outcome.success
    before = _keys(store)
    bundles = {k.split("/")[1] for k in before if k.startswith("runs/")}
    assert len(bundles) == 2 and any(k.startswith("results/") for k in before)  # probe and simulation
    replayed = run_partition(pipeline.defs, pipeline.instance, "fmi_validation", outcome.partition_key)
    assert replayed.success and _keys(store) >= before
    assert {k.split("/")[1] for k in _keys(store) if k.startswith("runs/")} == bundles  # replayed: no new launch
    before = _keys(store)

    plan = plan_prune(store, timedelta(days=30), now_ns=time.time_ns() + 31 * DAY_NS)
    assert {d.bundle.run_id for d in plan.removed} == bundles
    execute(plan)
    after = _keys(store)
    assert not any(k.startswith(("runs/", "results/")) for k in after)
    assert any(k.startswith("models/") for k in after) and any(k.startswith("catalog/") for k in after)

    again = run_partition(pipeline.defs, pipeline.instance, "fmi_validation", outcome.partition_key)
    assert again.success and again.checks["cel_assertions"][0]
    relaunched = {k.split("/")[1] for k in _keys(store) if k.startswith("runs/")}
    assert len(relaunched) == 2  # both steps launched again: nothing was replayed from a pruned bundle
