"""Benchmark: with N registered models (default 10,000), one upload-sensor tick and one report build, timed.

    .venv/bin/python bench/bench_models.py [N]

Setup (timed, but not part of the result): a temp DAGSTER_HOME with the default SQLite instance (telemetry off),
a local landing folder and store (``file://``), N small XML models in 100 folders (``site{i % 100}/m{i}.xml``),
registered as the sensor would have left them — their partitions added, the sensor cursor of a scan that
handled them all, and a materialization of ``xml_file`` and of ``xml_schema_validation`` per model (~5% failed
validation with a failed assertion). The 2·N materializations are written straight into the SQLite event log
in one transaction per shard (the rows ``store_event`` writes, batched); one ``report_runless_asset_event``
costs ~70 ms on SQLite, which would make the setup of 10,000 models take ~20 minutes.

Timed:

* **Sensor tick** — one new model dropped into the landing zone, then ``upload_sensor`` evaluated exactly as
  ``local_runner.tick`` does (cursor from the instance; the requested run is *not* executed). Counted with
  patched ``LocalStore`` methods: models hashed / opened (must be 1: only the new file) and entries listed. The
  listing of a local folder is an ``lstat`` of every entry (metadata only: nothing is opened or hashed) — N+1
  entries — and is also timed alone. Done with the cursor as it is right after N uploads (every model inside
  the 1 h lookback window: the cursor carries N ``recent`` entries) and in steady state (models older than the
  window: the cursor is a high-water mark), then once for a new version of an already registered model.
* **Report** — ``assets.report.refresh`` + ``save`` over the N models from scratch (reads all 2·N events),
  then after one more materialization an incremental refresh (reads 1 event), then the real
  ``validation_report_job`` through Dagster (``execute_in_process``), incremental and from scratch.

Not run in CI; numbers depend on the machine (disk, CPU).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

FAILED_EVERY = 20  # 5% of the models failed validation


def document(i: int, errors: int = 0) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- model {i} -->\n'
            f'<Campus xmlns="urn:validibot:demo:building" id="campus-{i}">\n  <Building id="b{i}">\n'
            f'    <Area>{100 + i % 997}</Area>\n    <Space id="sp-{i}" volume="{100 + i % 50}"/>\n'
            f'{"    <Bogus/>" * errors}\n  </Building>\n</Campus>\n')


def intake_metadata(path: str, sha: str) -> dict:
    return {"outcome": "passed", "failed_checks": "none", "failed_assertions": "none", "model": path,
            "status": "success", "root_element": "Campus", "element_count": 4, "sha256": sha}


def step_metadata(path: str, failed: bool) -> dict:
    return {"outcome": "failed" if failed else "passed",
            "failed_checks": "cel_assertions" if failed else "none",
            "failed_assertions": "clean" if failed else "none", "model": path,
            "status": "failed_validation" if failed else "success", "root_element": "Campus",
            "schema": "building.xsd", "valid": not failed, "error_count": 3 if failed else 0, "warning_count": 0}


def store_materializations(instance, materializations: list) -> None:  # noqa: ANN001
    """Record runless materializations with the rows ``SqliteEventLogStorage.store_event`` writes — the event in
    the runless run's shard and its mirror in the index shard, the asset tags, the asset key's latest event —
    batched: one transaction per shard, each event serialized once, the asset key's latest-event row written
    once per key (``store_event`` rewrites it for every event, the last one wins)."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    entries = [EventLogEntry(user_message="", level=logging.INFO, job_name=RUNLESS_JOB_NAME, run_id=RUNLESS_RUN_ID,
                             error_info=None, timestamp=time.time(), step_key=None,
                             dagster_event=DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value,
                                                        job_name=RUNLESS_JOB_NAME,
                                                        event_specific_data=StepMaterializationData(m)))
               for m in materializations]
    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        storage.store_event_batch(entries)
        return
    rows = [storage._event_to_row(entry) for entry in entries]
    with storage.run_connection(RUNLESS_RUN_ID) as conn:
        conn.execute(SqlEventLogStorageTable.insert(), rows)
    with storage.index_transaction() as conn:
        ids = [conn.execute(SqlEventLogStorageTable.insert().values(**row)).inserted_primary_key[0] for row in rows]
        storage._store_asset_event_tags(conn, entries, ids)
        latest = {e.dagster_event.asset_key: (e, event_id) for e, event_id in zip(entries, ids, strict=True)}
        for entry, event_id in latest.values():
            storage._store_asset_event(conn, entry, event_id)


class Counts:
    """Patches ``LocalStore`` (and the landing scan's settle check) to count what a tick touches."""

    def __init__(self) -> None:
        self.c: Counter[str] = Counter()

    @contextlib.contextmanager
    def watching(self):  # noqa: ANN201
        from validibot_pipelines.sensors import landing, uploads
        from validibot_pipelines.storage.local import LocalStore

        saved = {(LocalStore, "sha256_and_size"): LocalStore.sha256_and_size,
                 (LocalStore, "open_read"): LocalStore.open_read, (LocalStore, "entries"): LocalStore.entries,
                 (landing, "still_being_written"): landing.still_being_written,
                 (uploads, "registered_version"): uploads.registered_version}
        c = self.c

        def sha256_and_size(store, uri):  # noqa: ANN001, ANN202
            c["hashed"] += 1
            return saved[(LocalStore, "sha256_and_size")](store, uri)

        def open_read(store, uri):  # noqa: ANN001, ANN202
            c["opened"] += 1
            return saved[(LocalStore, "open_read")](store, uri)

        def entries(store, *args, **kwargs):  # noqa: ANN001, ANN202
            for item in saved[(LocalStore, "entries")](store, *args, **kwargs):
                c["listed"] += 1
                yield item

        def still_being_written(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            c["settle_checked"] += 1  # opens the file O_NOFOLLOW and reads its first 512 B / last 64 KiB
            return saved[(landing, "still_being_written")](*args, **kwargs)

        def registered_version(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            c["version_lookups"] += 1
            return saved[(uploads, "registered_version")](*args, **kwargs)

        patches = {(LocalStore, "sha256_and_size"): sha256_and_size, (LocalStore, "open_read"): open_read,
                   (LocalStore, "entries"): entries, (landing, "still_being_written"): still_being_written,
                   (uploads, "registered_version"): registered_version}
        c.clear()
        for (owner, name), fn in patches.items():
            setattr(owner, name, fn)
        try:
            yield c
        finally:
            for (owner, name), fn in saved.items():
                setattr(owner, name, fn)


def evaluate_sensor(defs, instance, cursor: str | None):  # noqa: ANN001, ANN201
    """``upload_sensor`` evaluated as ``local_runner.tick`` does it; (result, seconds)."""
    from dagster import build_sensor_context

    start = time.perf_counter()
    with build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources, definitions=defs,
                              sensor_name="upload_sensor") as context:
        result = defs.resolve_sensor_def("upload_sensor")(context)
    return result, time.perf_counter() - start


def repeated_ticks(defs, instance, cursor: str | None, window: str | None, counts: Counts,  # noqa: ANN001
                   repeats: int = 3) -> tuple[list[float], dict, object]:
    """The sensor evaluated ``repeats`` times on the same cursor (the result is not applied, so each sees the
    same landing zone): the seconds of each, what one evaluation touched (the same every time), the result."""
    seen, times = [], []
    for _ in range(repeats):
        with lookback(window), counts.watching() as c:
            result, seconds = evaluate_sensor(defs, instance, cursor)
            seen.append(dict(c))
        times.append(seconds)
    assert all(x == seen[0] for x in seen), seen
    return times, seen[0], result


def shown(times: list[float]) -> str:
    return f"{min(times):.3f} s best of {len(times)} ({', '.join(f'{t:.3f}' for t in times)})"


def apply_tick(instance, result, cursor_key: str) -> None:  # noqa: ANN001
    """What ``local_runner.tick`` does with a sensor result, except running the requested runs."""
    for event in result.asset_events or []:
        instance.report_runless_asset_event(event)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    instance.run_storage.set_cursor_values({cursor_key: result.cursor})


@contextlib.contextmanager
def lookback(seconds: str | None):  # noqa: ANN201
    old = os.environ.get("VALIDIBOT_LANDING_LOOKBACK_SECONDS")
    if seconds is not None:
        os.environ["VALIDIBOT_LANDING_LOOKBACK_SECONDS"] = seconds
    try:
        yield
    finally:
        if seconds is not None:
            if old is None:
                os.environ.pop("VALIDIBOT_LANDING_LOOKBACK_SECONDS")
            else:
                os.environ["VALIDIBOT_LANDING_LOOKBACK_SECONDS"] = old


def report_job_run(defs, instance) -> tuple[float, int, int]:  # noqa: ANN001
    """The real ``validation_report_job`` in process: (seconds, events_read, models)."""
    from dagster import AssetKey

    job = defs.resolve_job_def("validation_report_job")
    start = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=True,
                                    run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    seconds = time.perf_counter() - start
    assert result.success
    meta = instance.get_latest_materialization_event(AssetKey("validation_report")).asset_materialization.metadata
    return seconds, int(meta["events_read"].value), int(meta["models"].value)


def main(n: int = 10_000) -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    from dagster import AssetKey, AssetMaterialization, instance_for_test

    from validibot_pipelines.assets.report import refresh, report_uris, save, step_names
    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.local_runner import _cursor_key
    from validibot_pipelines.orchestration.names import key_for_upload
    from validibot_pipelines.resources import ValidibotSettings
    from validibot_pipelines.sensors.landing import Mark, _listing, lookback_ns, scan
    from validibot_pipelines.storage import get_store
    from validibot_pipelines.storage.local import uri_to_path
    from validibot_pipelines.validators.registry import get

    xml = get("xml")
    intake_name, step_name = step_names(xml)  # xml_file, xml_schema_validation
    assert intake_name == xml.intake_asset
    cursor_key = _cursor_key("upload_sensor")
    numbers: dict[str, str] = {}

    with tempfile.TemporaryDirectory(prefix="validibot-bench-models-") as tmp_name:
        tmp = Path(tmp_name)
        home, landing_dir = tmp / "home", tmp / "landing"
        home.mkdir()
        landing_dir.mkdir()
        landing, store = landing_dir.as_uri(), (tmp / "store").as_uri()
        with instance_for_test(temp_dir=str(home)) as instance:
            defs = build_defs(ValidibotSettings(store_uri=store, landing_uri=landing))

            # --- setup ------------------------------------------------------------------------------------
            t0 = time.perf_counter()
            for folder in range(min(n, 100)):
                (landing_dir / f"site{folder}").mkdir()
            for i in range(n):
                (landing_dir / f"site{i % 100}" / f"m{i}.xml").write_text(document(i))
            t_files = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = scan(landing, None, max_new=n + 1, max_bytes=2**62)  # hashes all N once (setup only)
            assert len(result.uploads) == n and not result.skipped and not result.pending, result
            cursor_fresh = result.cursor
            mark = Mark.loads(cursor_fresh)
            # Steady state, the cursor an hour on: every model older than the lookback window, so the cursor is
            # just the high-water mark. Emulated with VALIDIBOT_LANDING_LOOKBACK_SECONDS=0 for that tick (the
            # files cannot be aged: the scan also reads ctime).
            cursor_steady = Mark(mark.updated_ns, mark.uri, {}).dumps()
            t_scan = time.perf_counter() - t0
            t0 = time.perf_counter()
            keys = [u.key for u in result.uploads]
            instance.add_dynamic_partitions(xml.partitions.name, keys)
            instance.run_storage.set_cursor_values({cursor_key: cursor_fresh})
            t_parts = time.perf_counter() - t0
            t0 = time.perf_counter()
            intakes, steps = [], []
            for upload in result.uploads:
                i = int(upload.key.rsplit("/m", 1)[1].removesuffix(".xml"))
                path = upload.key
                intakes.append(AssetMaterialization(asset_key=AssetKey(intake_name), partition=upload.key,
                                                    metadata=intake_metadata(path, upload.sha256)))
                steps.append(AssetMaterialization(asset_key=AssetKey(step_name), partition=upload.key,
                                                  metadata=step_metadata(path, i % FAILED_EVERY == 0)))
            store_materializations(instance, intakes)  # every intake, then every step: steps are newer
            store_materializations(instance, steps)
            t_events = time.perf_counter() - t0
            setup = t_files + t_scan + t_parts + t_events
            latest = instance.get_latest_materialization_event(AssetKey(step_name))  # the batched rows are whole
            assert latest.dagster_event.partition == keys[-1], latest
            oldest = instance.fetch_materializations(AssetKey(intake_name), limit=1, ascending=True).records[0]
            assert oldest.partition_key == keys[0], oldest
            print(f"setup: {n:,} models ({len(document(0))} B XML each) in {min(n, 100)} folders, {setup:.1f} s "
                  f"(files {t_files:.1f} s, first scan + hash {t_scan:.1f} s, partitions {t_parts:.2f} s, "
                  f"{2 * n:,} materializations {t_events:.1f} s)")
            print(f"       sensor cursor after the bulk upload: {len(cursor_fresh):,} B "
                  f"({len(mark.recent):,} models inside the {lookback_ns() / 1e9:g} s lookback window); "
                  f"steady state: {len(cursor_steady)} B")

            # --- sensor tick: one new model --------------------------------------------------------------
            new = landing_dir / "site7" / "new-model.xml"
            new.write_text(document(n + 1))
            new_key = key_for_upload(landing, new.as_uri())
            counts = Counts()
            with lookback("0"):  # the process's first evaluation pays for imports and resource set-up: not counted
                _, warmup = evaluate_sensor(defs, instance, cursor_steady)
            ticks = {}
            for label, cursor, window in (("steady", cursor_steady, "0"), ("fresh", cursor_fresh, None)):
                times, c, tick_result = repeated_ticks(defs, instance, cursor, window, counts)
                ticks[label] = (times, c, tick_result)
                requested = [r.partition_key for r in tick_result.run_requests]
                assert requested == [new_key], requested
                assert c["hashed"] == 1 and c["opened"] == 1, c  # only the new file is read
                assert c["listed"] == n + 1, c
            apply_tick(instance, ticks["fresh"][2], cursor_key)  # as local_runner.tick (the run is not executed)

            store_obj = get_store(landing)
            listing = []
            for _ in range(3):
                t0 = time.perf_counter()
                objects, _bad = _listing(store_obj, landing)
                listing.append(time.perf_counter() - t0)
            assert len(objects) == n + 1

            print()
            print(f"upload sensor tick, 1 new model among {n:,} registered (sensor evaluation only; run not executed):")
            print(f"  (the process's first evaluation — imports, resource set-up — not counted: {warmup:.3f} s)")
            for label, text in (("fresh", f"cursor right after the bulk upload ({len(mark.recent):,} in the window)"),
                                ("steady", "steady state (registered models older than the lookback window)")):
                times, c, _ = ticks[label]
                print(f"  {text}:")
                print(f"    {shown(times)}")
                print(f"    per evaluation: hashed {c['hashed']} file(s), opened {c['opened']} for hashing, "
                      f"settle-checked {c.get('settle_checked', 0)}, version look-ups {c.get('version_lookups', 0)}; "
                      f"listed {c['listed']:,} entries (lstat metadata only — not opened, not hashed)")
            print(f"  the listing alone (scan's metadata walk, {len(objects):,} entries): {shown(listing)}")

            # --- sensor tick: a new version of a registered model -----------------------------------------
            changed = landing_dir / "site3" / "m3.xml"
            changed.write_text(document(3, errors=1))
            cursor_now = instance.run_storage.get_cursor_values({cursor_key})[cursor_key]
            times_changed, c_changed, tick_result = repeated_ticks(defs, instance, cursor_now, None, counts)
            assert [r.partition_key for r in tick_result.run_requests] == ["site3/m3.xml"]
            assert c_changed["hashed"] == 1 and c_changed.get("version_lookups") == 1, c_changed
            print("  a new version of a registered model (site3/m3.xml), cursor after the tick above:")
            print(f"    {shown(times_changed)}")
            print(f"    per evaluation: hashed {c_changed['hashed']}, version look-ups "
                  f"{c_changed['version_lookups']}, listed {c_changed['listed']:,} entries (lstat only)")
            for label, text in (("fresh", "tick, new model (fresh cursor)"), ("steady", "tick, new model (steady)")):
                numbers[text] = f"{min(ticks[label][0]):.3f} s, hashed {ticks[label][1]['hashed']}"
            numbers["tick, new version of a known model"] = f"{min(times_changed):.3f} s, hashed {c_changed['hashed']}"
            numbers["listing alone (lstat of every entry)"] = f"{min(listing):.3f} s for {len(objects):,} entries"

            # --- report -----------------------------------------------------------------------------------
            print()
            print(f"validation_report over {n:,} models:")
            t0 = time.perf_counter()
            frame, state, read = refresh(instance, store)
            t_refresh = time.perf_counter() - t0
            t0 = time.perf_counter()
            parquet_uri = save(store, frame, state)
            t_save = time.perf_counter() - t0
            assert len(frame) == n and read == 2 * n, (len(frame), read)
            failing = int((frame["status"] != "success").sum())
            assert failing == len(range(0, n, FAILED_EVERY)), failing
            parquet_path, state_path = (uri_to_path(uri) for uri in report_uris(store))
            print(f"  from scratch: refresh {t_refresh:.2f} s + save {t_save:.2f} s = {t_refresh + t_save:.2f} s; "
                  f"{len(frame):,} rows, {read:,} events read, {failing} failing; parquet "
                  f"{parquet_path.stat().st_size / 1e3:.0f} kB, state {state_path.stat().st_size / 1e6:.1f} MB")
            assert parquet_uri

            t0 = time.perf_counter()
            instance.report_runless_asset_event(AssetMaterialization(
                asset_key=AssetKey(step_name), partition="site5/m5.xml",
                metadata=step_metadata("site5/m5.xml", failed=True)))
            t_one = time.perf_counter() - t0
            t0 = time.perf_counter()
            frame2, state2, read2 = refresh(instance, store)
            t_inc = time.perf_counter() - t0
            t0 = time.perf_counter()
            save(store, frame2, state2)
            t_inc_save = time.perf_counter() - t0
            assert read2 == 1 and len(frame2) == n, (read2, len(frame2))
            assert frame2.set_index("partition").loc["site5/m5.xml", "status"] == "failed_validation"
            print(f"  one more materialization (report_runless_asset_event, {t_one * 1e3:.0f} ms), then incremental: "
                  f"refresh {t_inc:.2f} s + save {t_inc_save:.2f} s = {t_inc + t_inc_save:.2f} s; "
                  f"{read2} event(s) read, {len(frame2):,} rows")

            j_inc, j_inc_read, j_inc_models = report_job_run(defs, instance)
            state_path.unlink()
            j_full, j_full_read, j_full_models = report_job_run(defs, instance)
            assert j_inc_read == 0 and j_full_read == 2 * n + 1 and j_inc_models == j_full_models == n
            print(f"  validation_report_job through Dagster (execute_in_process): incremental {j_inc:.2f} s "
                  f"({j_inc_read} events read); from scratch {j_full:.2f} s ({j_full_read:,} events read), "
                  f"{j_full_models:,} rows")
            numbers["report from scratch (refresh + save)"] = (f"{t_refresh + t_save:.2f} s, {len(frame):,} rows, "
                                                               f"{read:,} events")
            numbers["report incremental (refresh + save)"] = f"{t_inc + t_inc_save:.2f} s, {read2} event read"
            numbers["report job via Dagster, incremental"] = f"{j_inc:.2f} s, {j_inc_read} events read"
            numbers["report job via Dagster, from scratch"] = f"{j_full:.2f} s, {j_full_read:,} events read"

    print()
    print(f"summary ({n:,} registered models; setup {setup:.1f} s, not included):")
    for label, value in numbers.items():
        print(f"  {label + ':':42s} {value}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
