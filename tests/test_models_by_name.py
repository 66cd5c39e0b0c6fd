"""A partition is a model (its landing path); a version is its checksum (the intake's data version).

Through Dagster for real (SQLite instance, local landing zone and store, local-subprocess worker): the upload
sensor, the partition timeline, staleness after a new version, replay of identical inputs under another name,
partitioned check history in single runs and batches, the cross-model report, backfills by name, and the
one-off migration of an instance keyed by checksum.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, RunsFilter
from dagster._core.definitions.partitions.utils.base import INVALID_PARTITION_SUBSTRINGS
from dagster._core.definitions.partitions.utils.multi import INVALID_STATIC_PARTITIONS_KEY_CHARACTERS

from validibot_pipelines.local_runner import _cursor_key, run_partition
from validibot_pipelines.orchestration.names import is_legacy_key, model_path, name_from, partition_key
from validibot_pipelines.storage import get_store, join_uri

FMU_PARTITIONS = "fmu_models"
TRICKY = ["hvac/ahu_controller.fmu", "a,b|c[1].fmu", "wait.../x....fmu", "100%/ok.fmu", "tab\there.fmu",
          "Pumpe Süd/Kälte ☃.fmu", "%2C.fmu", "line\nbreak.fmu", "..fmu", "del\x7f.fmu"]


@pytest.mark.parametrize("path", TRICKY)
def test_partition_key_is_safe_and_reversible(path: str) -> None:
    key = partition_key(path)
    assert model_path(key) == path
    assert not any(bad in key for bad in INVALID_PARTITION_SUBSTRINGS)
    assert not INVALID_STATIC_PARTITIONS_KEY_CHARACTERS & set(key)
    assert name_from(key) == key  # the CLI takes the key as the UI shows it …
    if "%" not in path:  # … or the plain path (one holding "%" is given as its key: that is the documented rule)
        assert name_from(path) == key
    assert not is_legacy_key(key)


def test_keys_read_as_typed_and_dagster_accepts_them() -> None:
    assert partition_key("hvac/ahu_controller.fmu") == "hvac/ahu_controller.fmu"  # what the UI filter matches
    assert partition_key("Pumpe Süd/Kälte.fmu") == "Pumpe Süd/Kälte.fmu"
    assert is_legacy_key("b5912243254162d00f1ae07bbc46a71950d4b4cc7d1e20a4875d92652e18e35c")
    with DagsterInstance.ephemeral() as instance:
        keys = [partition_key(p) for p in TRICKY]
        instance.add_dynamic_partitions(FMU_PARTITIONS, keys)  # raises on a key Dagster refuses
        assert sorted(instance.get_dynamic_partitions(FMU_PARTITIONS)) == sorted(keys)


def _materializations(pipeline, asset: str, key: str) -> list:  # noqa: ANN001
    return pipeline.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]), limit=20).records


def _runs(pipeline) -> list:  # noqa: ANN001
    return pipeline.instance.get_runs(RunsFilter(job_name="fmi_validation"))


def test_new_version_same_partition_identical_bytes_nothing(pipeline, sample_fmus):  # noqa: ANN001
    lag, multi = sample_fmus["first_order_lag"], sample_fmus["multi_output"]
    pipeline.drop(lag, name="hvac/a.fmu")
    (first,) = pipeline.tick()
    assert first.partition_key == "hvac/a.fmu" and first.success

    pipeline.drop(multi, name="hvac/a.fmu")  # a changed file under the same name: the model's next version
    (second,) = pipeline.tick()
    assert second.partition_key == "hvac/a.fmu" and second.success

    key = _cursor_key("upload_sensor")
    before = pipeline.instance.run_storage.get_cursor_values({key}).get(key)
    pipeline.drop(multi, name="hvac/a.fmu")  # the same bytes again: seen (the cursor moves), nothing runs
    assert pipeline.tick() == []
    assert pipeline.instance.run_storage.get_cursor_values({key}).get(key) != before

    assert pipeline.partitions() == ["hvac/a.fmu"]
    assert len(_runs(pipeline)) == 2
    intake = _materializations(pipeline, "fmu_intake", "hvac/a.fmu")
    versions = [r.asset_materialization.tags["dagster/data_version"] for r in intake]
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (lag, multi)}
    assert versions == [sha[multi], sha[lag]]  # newest first: the partition's timeline is the model's history
    assert [r.asset_materialization.metadata["model"].value for r in intake] == ["hvac/a.fmu"] * 2
    # The store stays content-addressed: each version once under models/<sha256>/, the catalog names the current.
    for digest in sha.values():
        assert get_store(pipeline.store_uri).exists(join_uri(pipeline.store_uri, "models", digest, "a.fmu"))
    record = json.loads(get_store(pipeline.store_uri).read_bytes(
        join_uri(pipeline.store_uri, "catalog", "hvac/a.fmu.json")))
    assert record["sha256"] == sha[multi] and record["name"] == "hvac/a.fmu"


def test_revert_to_earlier_bytes_runs_again(pipeline, sample_fmus):  # noqa: ANN001
    lag, multi = sample_fmus["first_order_lag"], sample_fmus["multi_output"]
    for path in (lag, multi, lag):
        pipeline.drop(path, name="m.fmu")
        (outcome,) = pipeline.tick()
        assert outcome.success
    versions = [r.asset_materialization.tags["dagster/data_version"]
                for r in _materializations(pipeline, "fmu_intake", "m.fmu")]
    assert versions[0] == hashlib.sha256(lag.read_bytes()).hexdigest() and len(versions) == 3


def test_new_version_marks_downstream_stale(pipeline, sample_fmus):  # noqa: ANN001
    from dagster._core.definitions.data_version import StaleStatus

    from validibot_pipelines.operations.staleness import resolver
    from validibot_pipelines.sensors.uploads import intake_run_config

    pipeline.drop(sample_fmus["first_order_lag"], name="plant.fmu")
    (outcome,) = pipeline.tick()
    graph = pipeline.defs.resolve_asset_graph()
    assert resolver(pipeline.instance, graph).get_status(AssetKey("fmu_simulation"), "plant.fmu") == StaleStatus.FRESH
    uri = pipeline.drop(sample_fmus["multi_output"], name="plant.fmu")
    digest = hashlib.sha256(sample_fmus["multi_output"].read_bytes()).hexdigest()
    run_partition(pipeline.defs, pipeline.instance, "fmi_validation", "plant.fmu",
                  run_config=intake_run_config("fmi", uri, None, digest), asset_selection=[AssetKey("fmu_intake")])
    status = resolver(pipeline.instance, graph)
    assert status.get_status(AssetKey("fmu_probe"), "plant.fmu") == StaleStatus.STALE
    assert status.get_status(AssetKey("fmu_simulation"), "plant.fmu") == StaleStatus.STALE


def test_same_bytes_two_names_share_copy_and_replay(pipeline, sample_fmus, sample_specs):  # noqa: ANN001
    spec = sample_specs / "first_order_lag.validation.yaml"
    pipeline.drop(sample_fmus["first_order_lag"], name="hvac/lag.fmu", spec=spec)
    (first,) = pipeline.tick()
    pipeline.drop(sample_fmus["first_order_lag"], name="plant/lag.fmu", spec=spec)
    (second,) = pipeline.tick()
    assert {first.partition_key, second.partition_key} == {"hvac/lag.fmu", "plant/lag.fmu"}
    assert first.outputs["fmu_intake"]["canonical_uri"] == second.outputs["fmu_intake"]["canonical_uri"]
    digest = first.outputs["fmu_intake"]["sha256"]
    stored = list(get_store(pipeline.store_uri).list(join_uri(pipeline.store_uri, "models", digest)))
    assert len(stored) == 1  # one copy of the bytes
    sim = _materializations(pipeline, "fmu_simulation", "plant/lag.fmu")[0].asset_materialization
    assert sim.metadata["backend"].value == "replay"  # identical inputs: the verdict is replayed, not relaunched
    assert second.outputs["fmu_simulation"]["outputs"] == first.outputs["fmu_simulation"]["outputs"]
    assert second.checks == first.checks
    first_sim = _materializations(pipeline, "fmu_simulation", "hvac/lag.fmu")[0].asset_materialization
    assert first_sim.metadata["backend"].value == "local"


def test_replay_index_holds_verdicts_only(tmp_path):  # noqa: ANN001
    from validibot_pipelines.envelopes import ExecutionContext, InputEnvelope, OutputEnvelope, Status, ValidatorRef
    from validibot_pipelines.orchestration.launch import envelope_identity, remember, replay

    store = (tmp_path / "store").as_uri()

    def envelope(run_id: str) -> InputEnvelope:
        bundle = join_uri(store, "runs", run_id)
        return InputEnvelope(run_id=run_id, validator=ValidatorRef(id="fmi-probe", type="fmi-probe", version="1"),
                             input_files=[], inputs={"x": 1}, context=ExecutionContext(
                                 callback_id=run_id, execution_bundle_uri=bundle,
                                 expected_output_uri=join_uri(bundle, "output.json"), timeout_seconds=10))

    first, second = envelope("r1"), envelope("r2")
    get_store(store).write_bytes(join_uri(first.context.execution_bundle_uri, "input.json"),
                                 first.model_dump_json().encode())
    assert envelope_identity(first) == envelope_identity(second)  # only the run's own names differ
    changed = envelope("r3")
    changed.inputs = {"x": 2}
    assert envelope_identity(changed) != envelope_identity(first)
    for status in (Status.FAILED_RUNTIME, Status.SUCCESS):
        out = OutputEnvelope(run_id="r1", validator=first.validator, status=status)
        get_store(first.context.expected_output_uri).write_bytes(first.context.expected_output_uri,
                                                                 out.model_dump_json().encode())
        remember(store, first, out)
        replayed = replay(store, second)
        if status == Status.FAILED_RUNTIME:
            assert replayed is None  # the system's fault is never replayed: the next run launches
        else:
            assert replayed is not None and replayed[0].status == Status.SUCCESS
            assert replayed[1].backend == "replay" and replayed[1].launch_id == "r1"
    # The bundle rewritten after the verdict was indexed (by anything): not vouched for, so launched again.
    output = first.context.expected_output_uri
    forged = OutputEnvelope(run_id="r1", validator=first.validator, status=Status.SUCCESS, outputs={"y": 1e9})
    get_store(output).write_bytes(output, forged.model_dump_json().encode())
    assert replay(store, second) is None
    # An index entry that points at a failed_runtime output (written by hand) is not replayed either.
    broken = OutputEnvelope(run_id="r1", validator=first.validator, status=Status.FAILED_RUNTIME)
    get_store(output).write_bytes(output, broken.model_dump_json().encode())
    index = join_uri(store, "results", envelope_identity(first) + ".json")
    pointer = json.loads(get_store(index).read_bytes(index))
    pointer["output_sha256"] = hashlib.sha256(broken.model_dump_json().encode()).hexdigest()
    get_store(index).write_bytes(index, json.dumps(pointer).encode())
    assert replay(store, second) is None
    get_store(output).delete(output)
    assert replay(store, second) is None  # bundle pruned: launch again


def test_checks_are_partitioned_in_single_runs_and_batches(pipeline, sample_fmus):  # noqa: ANN001
    from dagster._core.storage.tags import BACKFILL_ID_TAG

    pipeline.drop(sample_fmus["first_order_lag"], name="a/one.fmu")
    pipeline.drop(sample_fmus["multi_output"], name="b/two.fmu")
    outcomes = pipeline.tick()
    assert len(outcomes) == 2
    job = pipeline.defs.resolve_job_def("fmi_validation")
    result = job.execute_in_process(instance=pipeline.instance, raise_on_error=False, tags={
        BACKFILL_ID_TAG: "batch1", "dagster/asset_partition_range_start": "a/one.fmu",
        "dagster/asset_partition_range_end": "b/two.fmu"})
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.partition for e in evaluations} == {"a/one.fmu", "b/two.fmu"}
    for outcome in outcomes:  # single runs: each evaluation is the model's own
        single = [e for e in pipeline.instance.all_logs(outcome.run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert single and {e.dagster_event.event_specific_data.partition for e in single} == {outcome.partition_key}


def test_report_has_a_row_per_model_and_refreshes_incrementally(pipeline, sample_fmus):  # noqa: ANN001
    from validibot_pipelines.assets.report import refresh, report_uris

    pipeline.drop(sample_fmus["first_order_lag"], name="good/lag.fmu",
                  spec="assertions:\n  - name: too_high\n    expr: o.y > 100.0\n")
    pipeline.drop(sample_fmus["multi_output"], name="good/multi.fmu")
    broken = pipeline.drop(sample_fmus["first_order_lag"], name="bad/broken.fmu")
    get_store(broken).write_bytes(broken, b"not a zip")
    pipeline.tick()
    job = pipeline.defs.resolve_job_def("validation_report_job")
    result = job.execute_in_process(instance=pipeline.instance)
    meta = result.asset_materializations_for_node("validation_report")[0].metadata
    assert meta["models"].value == 3 and meta["failing"].value == 2
    rows = {r.data["model"]: r.data for r in meta["report"].records}
    assert rows["good/lag.fmu"]["status"] == "failed_validation"
    assert rows["good/lag.fmu"]["failed_assertions"] == "too_high"
    assert "fmu_simulation.cel_assertions" in rows["good/lag.fmu"]["failed_checks"]
    assert rows["bad/broken.fmu"]["status"] == "failed_validation"
    assert rows["bad/broken.fmu"]["failed_checks"] == "fmu_intake.intake_accepted"
    assert rows["good/multi.fmu"]["status"] == "success" and "fmi_version=2.0" in rows["good/multi.fmu"]["key_values"]
    assert "good/multi.fmu" not in list(rows)[:2]  # failing models first
    parquet_uri, _ = report_uris(pipeline.store_uri)
    frame = pd.read_parquet(parquet_uri.removeprefix("file://"))
    assert sorted(frame["model"]) == ["bad/broken.fmu", "good/lag.fmu", "good/multi.fmu"]
    assert frame.set_index("model").loc["good/multi.fmu", "fmi.interface"] == "co_simulation"

    # A new version of one model: the next refresh reads only the events since, and its row follows.
    pipeline.drop(sample_fmus["multi_output"], name="bad/broken.fmu")
    pipeline.tick()
    frame, _state, read = refresh(pipeline.instance, pipeline.store_uri)
    assert 0 < read <= 3  # intake, probe, simulation of that one model
    row = frame.set_index("model").loc["bad/broken.fmu"]
    assert row["status"] == "success" and row["sha256"] == hashlib.sha256(
        sample_fmus["multi_output"].read_bytes()).hexdigest()


def test_report_sensor_requests_a_refresh_only_after_new_results(pipeline, sample_fmus):  # noqa: ANN001
    from dagster import build_sensor_context

    sensor = pipeline.defs.resolve_sensor_def("report_sensor")

    def evaluate(cursor: str | None):  # noqa: ANN202
        with build_sensor_context(instance=pipeline.instance, cursor=cursor, definitions=pipeline.defs) as context:
            result = sensor.evaluate_tick(context)
        return result

    assert not evaluate(None).run_requests  # nothing validated yet
    pipeline.drop(sample_fmus["first_order_lag"], name="x.fmu")
    pipeline.tick()
    ticked = evaluate(None)
    assert len(ticked.run_requests) == 1 and sensor.job_name == "validation_report_job"
    assert not evaluate(ticked.cursor).run_requests  # covered: no second refresh for the same results


def test_backfill_takes_model_paths(pipeline, sample_fmus, monkeypatch, tmp_path):  # noqa: ANN001
    from validibot_pipelines.operations.backfill import submit_backfill
    from validibot_pipelines.operations.staleness import group_asset_keys

    pipeline.drop(sample_fmus["first_order_lag"], name="site 1/a,b.fmu")
    pipeline.tick()
    graph = pipeline.defs.resolve_asset_graph()
    backfill_id = submit_backfill(pipeline.instance, graph, group_asset_keys(graph, "fmi"),
                                  [name_from("site 1/a,b.fmu")], title="t", trigger="test")
    target = pipeline.instance.get_backfill(backfill_id).asset_backfill_data.target_subset
    assert {k for _, k in target.iterate_asset_partitions()} == {"site 1/a%2Cb.fmu"}
    with pytest.raises(ValueError, match="no such model.*path in the landing zone"):
        submit_backfill(pipeline.instance, graph, group_asset_keys(graph, "fmi"), ["nope.fmu"], title="t",
                        trigger="test")


def _left_by_an_older_validibot(pipeline, fmu, name: str) -> str:  # noqa: ANN001
    """What an older validibot left for an upload at ``name``: a checksum partition and its record at
    ``models/<sha256>/model.json`` (no ``name`` field). Returns the checksum."""
    from validibot_pipelines.orchestration.models import ModelRecord

    uri = pipeline.drop(fmu, name=name)
    digest = hashlib.sha256(fmu.read_bytes()).hexdigest()
    old = ModelRecord(sha256=digest, file_name=name.rsplit("/", 1)[-1], kind="fmi",
                      mime_type="application/x-fmu-sharedlibrary", size_bytes=1, source_uri=uri, status="success")
    folder = join_uri(pipeline.store_uri, "models", digest)
    get_store(folder).write_bytes(join_uri(folder, "model.json"), old.model_dump_json(exclude={"name"}).encode())
    pipeline.instance.add_dynamic_partitions(FMU_PARTITIONS, [digest])
    return digest


def test_older_instance_keyed_by_checksum_is_migrated(pipeline, sample_fmus):  # noqa: ANN001
    from validibot_pipelines.operations.migrate import legacy_message, migrate
    from validibot_pipelines.orchestration.models import load_record

    digest = _left_by_an_older_validibot(pipeline, sample_fmus["first_order_lag"], "old/lag.fmu")
    pipeline.instance.add_dynamic_partitions(FMU_PARTITIONS, ["0" * 64])
    assert "validibot migrate" in (legacy_message(pipeline.instance) or "")
    with pytest.raises(FileNotFoundError, match="older validibot.*validibot migrate"):
        load_record(pipeline.store_uri, digest)  # what a nightly run of the old partition reports, per model

    done = migrate(pipeline.instance, pipeline.store_uri, pipeline.landing_uri)
    assert done.renamed == {digest: "old/lag.fmu"} and done.dropped == ["0" * 64]
    assert pipeline.partitions() == ["old/lag.fmu"]
    assert legacy_message(pipeline.instance) is None
    assert load_record(pipeline.store_uri, "old/lag.fmu").sha256 == digest
    # Migrated partitions have no materialization under their name yet: the file still in the landing zone is
    # validated under it once (the nightly job would pick it as missing too); then it is the validated version.
    (rerun,) = pipeline.tick()
    assert rerun.partition_key == "old/lag.fmu" and rerun.success
    pipeline.drop(sample_fmus["first_order_lag"], name="old/lag.fmu")
    assert pipeline.tick() == []
    assert migrate(pipeline.instance, pipeline.store_uri, pipeline.landing_uri).renamed == {}  # idempotent


def test_report_refresh_misses_nothing_recorded_while_it_reads(pipeline, monkeypatch):  # noqa: ANN001
    """A validation run recording results while the report reads (a full build takes seconds at 10k models)."""
    from dagster import AssetMaterialization

    from validibot_pipelines.assets import report

    def result(asset: str, key: str) -> AssetMaterialization:
        return AssetMaterialization(asset_key=asset, partition=key, metadata={"status": "success", "sha256": "ab"})

    pipeline.instance.add_dynamic_partitions("fmu_models", ["a.fmu"])
    pipeline.instance.add_dynamic_partitions("xml_models", ["b.xml", "b2.xml"])
    pipeline.instance.report_runless_asset_event(result("xml_file", "b.xml"))
    original, calls = report.new_events, []

    def racing(instance, key, after, upto):  # noqa: ANN001, ANN202
        calls.append(key)
        if len(calls) == 2:  # while reading a later asset, results land for one already read and for this one
            instance.report_runless_asset_event(result("fmu_intake", "a.fmu"))
            instance.report_runless_asset_event(result("xml_file", "b2.xml"))
        yield from original(instance, key, after, upto)

    monkeypatch.setattr(report, "new_events", racing)
    frame, state, _ = report.refresh(pipeline.instance, pipeline.store_uri)
    report.save(pipeline.store_uri, frame, state)
    monkeypatch.setattr(report, "new_events", original)
    frame, _, read = report.refresh(pipeline.instance, pipeline.store_uri)
    assert read == 2 and {"a.fmu", "b2.xml", "b.xml"} <= set(frame["model"])


def test_same_bytes_two_specs_in_one_batch_keep_their_own_results(pipeline, sample_fmus):  # noqa: ANN001
    """Two names, one set of bytes, different specs (stop times), run together in one backfill batch."""
    from dagster._core.storage.tags import BACKFILL_ID_TAG

    pipeline.drop(sample_fmus["first_order_lag"], name="a/lag.fmu", spec="simulation: {stop_time: 1.0}\n")
    pipeline.drop(sample_fmus["first_order_lag"], name="b/lag.fmu", spec="simulation: {stop_time: 2.5}\n")
    assert len(pipeline.tick()) == 2
    job = pipeline.defs.resolve_job_def("fmi_validation")
    result = job.execute_in_process(instance=pipeline.instance, raise_on_error=False, tags={
        BACKFILL_ID_TAG: "batch2", "dagster/asset_partition_range_start": "a/lag.fmu",
        "dagster/asset_partition_range_end": "b/lag.fmu"})
    assert result.success
    reached = {}
    for key in ("a/lag.fmu", "b/lag.fmu"):
        meta = _materializations(pipeline, "fmu_simulation", key)[0].asset_materialization.metadata
        reached[key] = (meta["simulation_time_reached"].value, meta["timeseries_uri"].value)
    assert reached["a/lag.fmu"][0] == 1.0 and reached["b/lag.fmu"][0] == 2.5  # each its own spec
    assert reached["a/lag.fmu"][1] != reached["b/lag.fmu"][1]  # and its own bundle and artifacts


def test_a_registered_version_that_never_ran_runs_on_reupload(pipeline, sample_fmus, monkeypatch):  # noqa: ANN001
    from validibot_pipelines import local_runner

    real = local_runner.run_partition
    monkeypatch.setattr(local_runner, "run_partition", lambda *a, **k: None)  # the run is lost (never started)
    pipeline.drop(sample_fmus["first_order_lag"], name="lost.fmu")
    pipeline.tick()
    monkeypatch.setattr(local_runner, "run_partition", real)
    pipeline.drop(sample_fmus["first_order_lag"], name="lost.fmu")  # the author uploads the same bytes again
    (outcome,) = pipeline.tick()
    assert outcome.partition_key == "lost.fmu" and outcome.success
    pipeline.drop(sample_fmus["first_order_lag"], name="lost.fmu")  # now it was validated: nothing to do
    assert pipeline.tick() == []


def test_migration_keeps_a_version_uploaded_by_name_since(pipeline, sample_fmus):  # noqa: ANN001
    from validibot_pipelines.operations.migrate import migrate
    from validibot_pipelines.orchestration.models import load_record

    old_sha = _left_by_an_older_validibot(pipeline, sample_fmus["first_order_lag"], "m.fmu")
    pipeline.drop(sample_fmus["multi_output"], name="m.fmu")  # after the upgrade: v2 under its name
    (outcome,) = pipeline.tick()
    migrate(pipeline.instance, pipeline.store_uri, pipeline.landing_uri)
    assert load_record(pipeline.store_uri, "m.fmu").sha256 == outcome.outputs["fmu_intake"]["sha256"] != old_sha
    assert pipeline.partitions() == ["m.fmu"]


def test_a_run_requested_for_an_older_version_validates_the_bytes_there_now(pipeline, sample_fmus):  # noqa: ANN001
    """Runs can start out of order: the request for v1 starting after v2 landed takes in v2 (the model's
    current bytes), says so, and never records a failure over the newer version."""
    from validibot_pipelines.sensors.uploads import intake_run_config

    uri = pipeline.drop(sample_fmus["first_order_lag"], name="late.fmu")
    v1 = hashlib.sha256(sample_fmus["first_order_lag"].read_bytes()).hexdigest()
    pipeline.instance.add_dynamic_partitions(FMU_PARTITIONS, ["late.fmu"])
    pipeline.drop(sample_fmus["multi_output"], name="late.fmu")  # v2 lands before v1's run starts
    v2 = hashlib.sha256(sample_fmus["multi_output"].read_bytes()).hexdigest()
    late = run_partition(pipeline.defs, pipeline.instance, "fmi_validation", "late.fmu",
                         run_config=intake_run_config("fmi", uri, None, v1))
    assert late.success and late.outputs["fmu_intake"]["sha256"] == v2
    (finding,) = [f for f in late.outputs["fmu_intake"]["findings"] if f["code"] == "SOURCE_CHANGED"]
    assert finding["severity"] == "INFO" and v1[:12] in finding["text"] and v2[:12] in finding["text"]
    intake = _materializations(pipeline, "fmu_intake", "late.fmu")[0].asset_materialization
    assert intake.tags["dagster/data_version"] == v2


def test_a_spec_change_makes_every_step_stale_until_each_ran_with_it(pipeline, sample_fmus):  # noqa: ANN001
    from dagster._core.definitions.data_version import StaleStatus

    from validibot_pipelines.operations.staleness import resolver
    from validibot_pipelines.sensors.uploads import version_observation

    steps = [AssetKey(a) for a in ("fmu_intake", "fmu_probe", "fmu_simulation")]
    uri = pipeline.drop(sample_fmus["first_order_lag"], name="s.fmu", spec="simulation: {stop_time: 1.0}\n")
    (outcome,) = pipeline.tick()
    graph = pipeline.defs.resolve_asset_graph()
    assert {resolver(pipeline.instance, graph).get_status(k, "s.fmu") for k in steps} == {StaleStatus.FRESH}
    new_spec = b"simulation: {stop_time: 2.0}\n"
    get_store(uri).write_bytes(uri + ".validation.yaml", new_spec)
    pipeline.instance.report_runless_asset_event(version_observation(
        "fmi", "s.fmu", hashlib.sha256(new_spec).hexdigest(), outcome.outputs["fmu_intake"]["sha256"]))
    assert {resolver(pipeline.instance, graph).get_status(k, "s.fmu") for k in steps} == {StaleStatus.STALE}
    run_partition(pipeline.defs, pipeline.instance, "fmi_validation", "s.fmu", asset_selection=[steps[0]])
    status = resolver(pipeline.instance, graph)  # intake re-ran with the new spec; the steps after it did not
    assert [status.get_status(k, "s.fmu") for k in steps] == [StaleStatus.FRESH, StaleStatus.STALE, StaleStatus.STALE]
