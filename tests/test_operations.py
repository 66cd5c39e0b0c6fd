"""Staleness, the nightly re-validation and batched backfills, through Dagster for real.

* staleness: materialize models, then change a spec / bump a validator's code version; the nightly logic
  (Dagster's own stale status) picks exactly the stale and missing partitions, never the fresh ones, and
  submits a real backfill for them.
* backfills: ``validibot backfill --validator fmi --all`` submits a backfill to the instance; the real backfill
  daemon iteration (code location in a gRPC server, runs executed by a synchronous launcher) splits it into
  runs of at most the policy's batch size; each partition gets its own metadata and check evaluations, and a
  rejected model is blocked per model without failing its batch.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    RunsFilter,
)
from dagster._core.execution.backfill import BulkActionStatus

from validibot_pipelines.definitions import build_defs
from validibot_pipelines.operations.nightly import revalidate_stale
from validibot_pipelines.operations.staleness import plan_revalidation
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.energyplus.samples import sample_idf
from validibot_pipelines.validators.fmi.samples.build import build_fmu

ROOT = Path(__file__).resolve().parents[1]
EP_SPEC = "weather: Chicago\nassertions:\n  - {name: no_fatal, expr: 'o.fatal_count == 0'}\n"



def _backfill_partitions(instance: DagsterInstance, backfill_id: str) -> set[str]:
    backfill = instance.get_backfill(backfill_id)
    subset = backfill.asset_backfill_data.target_subset
    return {ap.partition_key for ap in subset.iterate_asset_partitions()}


def test_nightly_picks_stale_and_missing_partitions_only(pipeline, sample_fmus, tmp_path):  # noqa: ANN001
    lag_uri = pipeline.drop(sample_fmus["first_order_lag"], spec="assertions:\n  - {name: a, expr: 'o.y > 0.0'}\n")
    pipeline.drop(sample_fmus["multi_output"])
    pipeline.drop(sample_idf("one_zone_box"), spec=EP_SPEC)
    outcomes = {o.outputs.get("fmu_intake", o.outputs.get("energyplus_model"))["file_name"]: o
                for o in pipeline.tick()}
    assert all(o.success for o in outcomes.values())
    lag, multi = outcomes["first_order_lag.fmu"].partition_key, outcomes["multi_output.fmu"].partition_key
    ep = outcomes["one_zone_box.idf"].partition_key
    instance, graph = pipeline.instance, pipeline.defs.resolve_asset_graph()

    # Everything fresh right after the sensor's runs: nothing to re-validate.
    assert plan_revalidation(instance, graph, "fmi").partitions == []
    assert plan_revalidation(instance, graph, "energyplus").partitions == []

    # A model registered but never validated is missing; the author edits lag's spec in the landing zone.
    never_run = "f" * 64
    instance.add_dynamic_partitions("fmu_models", [never_run])
    get_store(lag_uri).write_bytes(lag_uri + ".validation.yaml", b"assertions:\n  - {name: b, expr: 'o.y > 1.0'}\n")
    done = revalidate_stale(instance, graph, pipeline.store_uri, instance.report_runless_asset_event, "test")
    plan, backfill_id = done["fmi"]
    assert set(plan.partitions) == {lag, never_run}  # multi_output is fresh and is not picked
    assert plan.fresh == 1
    assert any("fmu_intake: stale" in r for r in plan.reasons[lag]), plan.reasons[lag]
    assert plan.reasons[never_run][0] == "fmu_intake: missing"
    assert _backfill_partitions(instance, backfill_id) == {lag, never_run}
    assert done["energyplus"] == (done["energyplus"][0], None) and done["energyplus"][0].fresh == 1
    # The UI shows the same: the stale partition's intake is stale because its spec source changed.
    from validibot_pipelines.operations.staleness import resolver
    causes = resolver(instance, graph).get_stale_root_causes(AssetKey("fmu_intake"), lag)
    assert any(c.key.asset_key == AssetKey("fmi_spec") and c.key.partition_key == lag for c in causes), causes

    # A new FMI validator release: every FMI partition is stale, EnergyPlus stays fresh.
    bumped = build_defs(pipeline.settings, code_versions={"fmi": "fmi-probe@9.9.9+fmi-simulation@9.9.9"})
    new_graph = bumped.resolve_asset_graph()
    fmi_plan = plan_revalidation(instance, new_graph, "fmi")
    assert set(fmi_plan.partitions) == {lag, multi, never_run}
    assert any("code version" in r for r in fmi_plan.reasons[multi][0:1]), fmi_plan.reasons[multi]
    assert plan_revalidation(instance, new_graph, "energyplus").partitions == []
    assert ep in instance.get_dynamic_partitions("energyplus_models")

    # The nightly schedule's job does the same through Dagster: one backfill for FMI, none for EnergyPlus.
    from dagster import build_schedule_context

    schedule = bumped.resolve_schedule_def("nightly_revalidation_schedule")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.job_name == "nightly_revalidation"
    with build_schedule_context(instance=instance) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    before = {b.backfill_id for b in instance.get_backfills()}
    # Run it as the daemon would: a reconstructable job from a code location file (the op needs the repository).
    location = tmp_path / "location.py"
    location.write_text(
        "from validibot_pipelines.definitions import build_defs\n"
        "from validibot_pipelines.resources import ValidibotSettings\n"
        f"defs = build_defs(ValidibotSettings(store_uri={pipeline.store_uri!r}, landing_uri={pipeline.landing_uri!r}),"
        " code_versions={'fmi': 'fmi-probe@9.9.9+fmi-simulation@9.9.9'})\n")
    from dagster import execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    recon = ReconstructableRepository.for_file(str(location), "defs", str(ROOT)).get_reconstructable_job(
        schedule.job_name)
    with execute_job(recon, instance=instance, tags=request.tags) as result:
        assert result.success
        meta = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT").event_specific_data.metadata
    assert meta["fmi_to_revalidate"].value == 3 and meta["energyplus_backfill"].value == "none (all fresh)"
    (new_backfill,) = [b for b in instance.get_backfills() if b.backfill_id not in before]
    assert new_backfill.backfill_id == meta["fmi_backfill"].value
    assert new_backfill.tags["validibot/trigger"] == "nightly"
    assert _backfill_partitions(instance, new_backfill.backfill_id) == {lag, multi, never_run}


def _daemon_home(tmp_path: Path, monkeypatch, defs_expr: str, batch_size: int) -> dict:  # noqa: ANN001
    """A DAGSTER_HOME whose runs execute synchronously, and a code location file ``defs = <defs_expr>``."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_launcher:\n  module: dagster._core.launcher.sync_in_memory_run_launcher\n"
        "  class: SyncInMemoryRunLauncher\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("VALIDIBOT_HOME", str(tmp_path / "validibot"))
    monkeypatch.setenv("VALIDIBOT_BACKFILL_BATCH_SIZE", str(batch_size))
    defs_file = tmp_path / "location.py"
    defs_file.write_text(
        "from validibot_pipelines.definitions import build_defs\n"
        "from validibot_pipelines.resources import ValidibotSettings\n"
        "from validibot_pipelines.resources.backends.cloudrun import CloudRunJobsBackend\n"
        f"defs = {defs_expr}\n")
    return {"home": home, "defs_file": defs_file, "tmp": tmp_path}


def _drive_backfill(instance: DagsterInstance, defs_file: Path, backfill_id: str) -> BulkActionStatus:
    """Run the real backfill daemon iteration (code location from ``defs_file``) until the backfill ends."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    target = PythonFileTarget(python_file=str(defs_file), attribute="defs", working_directory=str(ROOT),
                              location_name="validibot_test")
    logger = logging.getLogger("backfill-test")
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler())
    with create_test_daemon_workspace_context(target, instance) as workspace:
        for _ in range(20):
            errors = [e for e in execute_backfill_iteration(workspace, logger) if e]
            assert not errors, errors
            if instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED:
                break
    return instance.get_backfill(backfill_id).status


@pytest.fixture
def daemon_world(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """Local store and landing zone under tmp folders; batches of 2."""
    store, landing = (tmp_path / "store").as_uri(), (tmp_path / "landing").as_uri()
    return _daemon_home(tmp_path, monkeypatch, f"build_defs(ValidibotSettings(store_uri={store!r}, "
                        f"landing_uri={landing!r}, simulation_timeout_seconds=3))", batch_size=2)


def test_cli_backfill_runs_in_batches_with_per_partition_results(daemon_world, monkeypatch):  # noqa: ANN001
    from tests.conftest import Pipeline
    from validibot_pipelines import cli
    from validibot_pipelines.operations import lineage

    tmp = daemon_world["tmp"]
    monkeypatch.setattr(lineage, "DEFAULT_BATCH_SIZE", 2)
    with DagsterInstance.get() as instance:
        pipe = Pipeline(instance, (tmp / "landing").as_uri(), (tmp / "store").as_uri(), simulation_timeout_seconds=3)
        for n in range(5):
            pipe.drop(build_fmu("first_order_lag", tmp, variant=f"lag{n}"))  # byte-distinct: own partition
        bad = tmp / "broken.fmu"
        bad.write_bytes(b"not a zip")
        pipe.drop(bad)
        first = {o.outputs["fmu_intake"]["file_name"]: o for o in pipe.tick()}
        assert len(instance.get_dynamic_partitions("fmu_models")) == 6 and not first["broken.fmu"].success
        # Registered but never validated, and its intake record is not in the store (the nightly plan picks
        # such partitions as missing): it must fail alone, not take its batch down.
        lost = "e" * 64
        instance.add_dynamic_partitions("fmu_models", [lost])
        partitions = set(instance.get_dynamic_partitions("fmu_models"))

        # The CLI path: a real backfill in the instance (the UI's "Materialize all" → backfill is the same object).
        monkeypatch.setenv("VALIDIBOT_STORE_URI", (tmp / "store").as_uri())
        assert cli.main(["backfill", "--validator", "nope", "--all"]) == 2
        assert cli.main(["backfill", "--validator", "fmi", "--all"]) == 0
        (backfill,) = instance.get_backfills()
        assert _backfill_partitions(instance, backfill.backfill_id) == partitions

        status = _drive_backfill(instance, daemon_world["defs_file"], backfill.backfill_id)
        assert status == BulkActionStatus.COMPLETED_SUCCESS
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        # 7 partitions, batch size 2 -> 4 runs, each over a range of <= 2 partitions
        assert len(runs) == math.ceil(7 / 2)
        covered = []
        for run in runs:
            start, end = run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
            keys = instance.get_dynamic_partitions("fmu_models")
            batch = keys[keys.index(start): keys.index(end) + 1]
            assert 1 <= len(batch) <= 2
            covered += batch
        assert sorted(covered) == sorted(partitions)

        run_ids = {r.run_id for r in runs}
        lost_intake = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey("fmu_intake"), asset_partitions=[lost]), limit=1).records[0]
        assert lost_intake.run_id in run_ids
        assert lost_intake.asset_materialization.metadata["status"].value == "failed_runtime"
        lost_sim = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey("fmu_simulation"), asset_partitions=[lost]), limit=1).records[0]
        assert lost_sim.asset_materialization.metadata["status"].value == "blocked"
        for name, outcome in first.items():
            sim = instance.fetch_materializations(AssetRecordsFilter(
                asset_key=AssetKey("fmu_simulation"), asset_partitions=[outcome.partition_key]), limit=1).records[0]
            assert sim.run_id in run_ids, name
            meta = sim.asset_materialization.metadata
            if name == "broken.fmu":  # rejected at intake: blocked per model, its batch still succeeded
                assert meta["status"].value == "blocked" and "fmu_intake" in meta["blocked_by"].value
                continue
            # per-partition metadata: each model's own plot and GUID, not a batch-wide copy
            assert meta["status"].value == "success" and meta["plot"].value.startswith(f"![{name}]")

        # Per-partition check evaluations, each targeting its own partition's materialization.
        def evaluations(asset: str, check: str) -> dict[str, bool]:
            by_partition = {}
            for run_id in run_ids:
                for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
                    evaluation = entry.dagster_event.event_specific_data
                    if evaluation.asset_check_key != AssetCheckKey(AssetKey(asset), check):
                        continue
                    target = instance.fetch_materializations(AssetRecordsFilter(
                        asset_key=evaluation.asset_key,
                        storage_ids=[evaluation.target_materialization_data.storage_id]), limit=1).records[0]
                    assert target.run_id == run_id
                    by_partition[target.partition_key] = evaluation.passed
            return by_partition

        good = {o.partition_key for n, o in first.items() if n != "broken.fmu"}
        assert evaluations("fmu_intake", "intake_accepted") == {**dict.fromkeys(good, True),
                                                                first["broken.fmu"].partition_key: False,
                                                                lost: False}
        assert evaluations("fmu_probe", "probe_approved") == dict.fromkeys(good, True)  # broken one: blocked
        assert evaluations("fmu_simulation", "simulation_succeeded") == dict.fromkeys(good, True)


def test_cloudrun_backfill_batch_launches_each_model_once_and_the_sensor_collects_each(  # noqa: ANN001
        gcs_bucket, tmp_path, monkeypatch):
    """A batched backfill on Cloud Run (stand-in, gcp-storage-emulator): ONE run over a range of three models
    launches the three probes as ONE execution of three tasks (each bundle recording its own partition and
    task — Dagster refuses ``partition_key`` in a range), never has more than ``max_in_flight=1`` executions
    at once (a launch waits for room instead of retrying and re-launching), and the output sensor's runs — in
    the validator's job, one per partition — finish every model's validation."""
    import json
    import uuid

    from tests.backend_helpers import drain, latest, pipeline_on
    from validibot_pipelines.operations.backfill import submit_backfill
    from validibot_pipelines.operations.staleness import group_asset_keys
    from validibot_pipelines.resources.backends.cloudrun import CloudRunJobsBackend
    from validibot_pipelines.resources.backends.cloudrun_stand_in import LocalJobRunner
    from validibot_pipelines.storage import join_uri, leaf_name

    # The models were validated locally first: the Cloud Run backfill must really run them, not replay those.
    monkeypatch.setenv("VALIDIBOT_REPLAY_VERDICTS", "0")
    job = f"validibot-fmi-{uuid.uuid4().hex[:8]}"  # its own job: in-flight counts see only this test's executions
    fields = dict(project="validibot-test", region="europe-west1", job=job, stand_in=True, max_in_flight=1,
                  busy_retry_seconds=1)
    store, landing = f"{gcs_bucket}/store", f"{gcs_bucket}/landing"
    world = _daemon_home(tmp_path, monkeypatch, f"build_defs(ValidibotSettings(store_uri={store!r}, "
                         f"landing_uri={landing!r}, simulation_timeout_seconds=30), "
                         f"fmi_backend=CloudRunJobsBackend(**{fields!r}))", batch_size=3)
    with DagsterInstance.get() as instance:
        local = pipeline_on(instance, gcs_bucket)  # registered and validated once on the local backend
        for n in range(3):
            local.drop(build_fmu("first_order_lag", tmp_path, variant=f"cr{n}"))
        assert all(o.success for o in local.tick())
        partitions = local.partitions()
        graph = local.defs.resolve_asset_graph()
        backfill_id = submit_backfill(instance, graph, group_asset_keys(graph, "fmi"), partitions,
                                      title="validator change", trigger="test")
        assert _drive_backfill(instance, world["defs_file"], backfill_id) == BulkActionStatus.COMPLETED_SUCCESS
        (batch_run,) = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert batch_run.tags["dagster/asset_partition_range_start"] != batch_run.tags[
            "dagster/asset_partition_range_end"]

        assert not instance.all_logs(batch_run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)

        runs = join_uri(store, "runs")
        launches = [json.loads(get_store(o.uri).read_bytes(o.uri)) for o in get_store(runs).list(runs)
                    if leaf_name(o.uri) == "launch.json"]
        ours = [launch for launch in launches if launch["job_name"].endswith(f"/jobs/{job}")]
        assert sorted(launch["partition"] for launch in ours) == sorted(partitions)  # each model once, its own
        assert {(launch["asset"], launch["dagster_run_id"]) for launch in ours} == {("fmu_probe", batch_run.run_id)}
        assert len({launch["execution"] for launch in ours}) == 1  # one execution for the batch

        runner = LocalJobRunner.shared()
        job_name = f"projects/validibot-test/locations/europe-west1/jobs/{job}"
        for name in runner.names():
            runner.wait(name)
        (probes,) = runner.list_executions(job_name)
        assert probes.task_count == 3

        remote = pipeline_on(instance, gcs_bucket, CloudRunJobsBackend(**fields))
        outcomes = drain(remote, max_ticks=10)
        assert all(o.success for o in outcomes), [(o.run_id, o.checks) for o in outcomes]
        assert {instance.get_run_by_id(o.run_id).job_name for o in outcomes} == {"fmi_validation"}
        for partition in partitions:
            sim = latest(remote, "fmu_simulation", partition)
            assert sim.metadata["status"].value == "success" and sim.metadata["backend"].value == "cloudrun"
        # The probes' one execution, then a simulation per model (each resumed alone by the output sensor),
        # nothing twice, and never two executions at once (max_in_flight=1: later launches waited for room).
        executions = runner.list_executions(job_name)
        assert sorted(e.task_count for e in executions) == [1, 1, 1, 3]
        spans = sorted((e.create_time.timestamp(), e.completion_time.timestamp()) for e in executions)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), spans
