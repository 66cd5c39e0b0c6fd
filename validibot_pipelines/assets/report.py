"""``validation_report``: one row per model across every validator — what an analyst sorts and filters.

Unpartitioned, group ``reports``, downstream of every validator asset. A row is a model (a partition): its
name, validator, current checksum, status, failed checks and assertions, the validator's key values
(``Validator.key_values``) and when it was last validated. The rows come from Dagster's own event log — the
materializations the validator assets recorded, whose metadata starts with ``outcome``/``failed_checks``/
``failed_assertions`` (``assets/metadata.py``) — read **incrementally**: the report keeps, next to its parquet
file, the state it was built from and the last event id it read, so a refresh reads only the materializations
recorded since (10,000 models re-read only what changed; the first build reads them all once).

Which results are current: a step's materialization counts for a model only if it was recorded after the
model's latest intake — a new version whose simulation has not run yet shows ``pending`` (or the step that
stopped it), never the previous version's values.

The table in the UI shows the failing models first and is capped (``UI_ROWS``); the full table is the parquet
file ``<store>/reports/validation_report.parquet`` (pandas/pyarrow). The ``report_sensor`` refreshes it after
validation runs (``sensors/report.py``).
"""

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
)

from validibot_pipelines.assets.metadata import frame_table
from validibot_pipelines.orchestration.names import model_path
from validibot_pipelines.resources.settings import ValidibotSettings
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.registry import Validator, validators

REPORT_ASSET = "validation_report"
UI_ROWS = 500
PAGE = 1000
COLUMNS = ["model", "validator", "status", "failed_checks", "failed_assertions", "key_values", "sha256",
           "last_validated", "partition"]


def report_uris(store_uri: str) -> tuple[str, str]:
    """(parquet file, incremental state) of the report in the store."""
    folder = join_uri(store_uri, "reports")
    return join_uri(folder, f"{REPORT_ASSET}.parquet"), join_uri(folder, f"{REPORT_ASSET}.state.json")


def step_names(validator: Validator) -> list[str]:
    """The validator's assets in run order, intake first."""
    return list(_step_names(validator.name))


@cache
def _step_names(name: str) -> tuple[str, ...]:
    from validibot_pipelines.validators.registry import get

    return tuple(key.path[-1] for assets_def in get(name).assets() for key in assets_def.keys)


def watched_keys() -> list[AssetKey]:
    """Every validator asset the report reads (and depends on)."""
    return [AssetKey(name) for v in validators() for name in step_names(v)]


@dataclass
class Event:
    """The part of one materialization the report keeps."""

    storage_id: int
    timestamp: float
    meta: dict[str, Any]


def _plain(value: Any) -> Any:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, str | int | float | bool) or raw is None else str(raw)


def newest_result_id(instance: DagsterInstance) -> int:
    """The newest materialization id among the validator assets (-1: none yet)."""
    newest = -1
    for key in watched_keys():
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=1).records
        if records:
            newest = max(newest, records[0].storage_id)
    return newest


def new_events(instance: DagsterInstance, key: AssetKey, after: int, upto: int) -> Iterator[tuple[str, Event]]:
    """(partition, event) of each materialization of ``key`` with ``after < storage id <= upto``, oldest first."""
    cursor = None
    while True:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, after_storage_id=after, before_storage_id=upto + 1),
            limit=PAGE, cursor=cursor, ascending=True)
        for record in result.records:
            materialization = record.asset_materialization
            if materialization is None or record.partition_key is None:
                continue
            meta = {k: _plain(v) for k, v in materialization.metadata.items()
                    if k in {"status", "outcome", "failed_checks", "failed_assertions", "sha256", "model"}
                    or not isinstance(v, MetadataValue) or isinstance(_plain(v), int | float | bool)
                    or len(str(_plain(v))) <= 80}
            yield record.partition_key, Event(record.storage_id, record.timestamp, meta)
        if not result.has_more:
            return
        cursor = result.cursor


def row(validator: Validator, key: str, events: dict[str, Event]) -> dict[str, Any] | None:
    """The report row of one model from the latest materialization of each of its assets."""
    names = step_names(validator)
    intake = events.get(names[0])
    if intake is None:
        return None
    current = [(name, events[name]) for name in names[1:]
               if name in events and events[name].storage_id > intake.storage_id]
    # The first step that did not succeed decides (a batch records the later steps of a stopped model as
    # "blocked"); all succeeded → success; some not run yet for this version → pending.
    statuses = [str(e.meta.get("status", "unknown")) for e in (intake, *(e for _, e in current))]
    stopped = [s for s in statuses if s != "success"]
    status = stopped[0] if stopped else "success" if len(current) == len(names) - 1 else "pending"
    judged = [(names[0], intake), *current]
    failed_checks = [f"{name}.{c}" for name, e in judged for c in _listed(e.meta.get("failed_checks"))]
    failed_assertions = [a for _, e in judged for a in _listed(e.meta.get("failed_assertions"))]
    if status == "success" and failed_checks:  # the worker ran, but the model failed a check (e.g. its assertions)
        status = "failed_validation"
    values = {}
    for name in validator.key_values:
        for _, e in reversed(judged):
            if name in e.meta:
                values[name] = e.meta[name]
                break
    latest = max(e.timestamp for _, e in judged)
    return {"model": model_path(key), "validator": validator.name, "status": status,
            "failed_checks": ", ".join(failed_checks), "failed_assertions": ", ".join(failed_assertions),
            "key_values": "; ".join(f"{k}={_short(v)}" for k, v in values.items()),
            "sha256": str(intake.meta.get("sha256", "")),
            "last_validated": datetime.fromtimestamp(latest, tz=UTC).isoformat(timespec="seconds"),
            "partition": key, **{f"{validator.name}.{k}": v for k, v in values.items()}}


def _listed(text: Any) -> list[str]:
    """The names in a ``failed_checks`` / ``failed_assertions`` entry (``none``: no names)."""
    return [part.strip() for part in str(text or "").split(",") if part.strip() not in ("", "none")]


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def load_state(store_uri: str) -> dict[str, Any]:
    _, state_uri = report_uris(store_uri)
    store = get_store(state_uri)
    if not store.exists(state_uri):
        return {"cursor": -1, "models": {}}
    return json.loads(store.read_bytes(state_uri))


def refresh(instance: DagsterInstance, store_uri: str) -> tuple[pd.DataFrame, dict[str, Any], int]:
    """Read the events recorded since the last build into the saved state; the rows, the state, events read."""
    state = load_state(store_uri)
    newest = newest_result_id(instance)
    if int(state["cursor"]) > newest:  # the state was built from another (or a reset) Dagster instance: rebuild
        state = {"cursor": -1, "models": {}}
    after = int(state["cursor"])
    # Read up to the newest id as of now, then move the cursor exactly there: results that validation runs
    # record while this refresh reads are after it, so the next refresh reads them (none is skipped).
    upto = max(after, newest)
    models: dict[str, dict[str, dict[str, dict[str, Any]]]] = state["models"]
    read = 0
    for validator in validators():
        by_key = models.setdefault(validator.name, {})
        for name in step_names(validator):
            for key, event in new_events(instance, AssetKey(name), after, upto):
                by_key.setdefault(key, {})[name] = event.__dict__
                read += 1
    state["cursor"] = upto
    rows = []
    for validator in validators():
        registered = set(instance.get_dynamic_partitions(validator.partitions.name))  # removed models drop out
        for key, events in models.get(validator.name, {}).items():
            if key not in registered:
                continue
            built = row(validator, key, {n: Event(**e) for n, e in events.items()})
            if built:
                rows.append(built)
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype=str)
    return frame, state, read


def save(store_uri: str, frame: pd.DataFrame, state: dict[str, Any]) -> str:
    parquet_uri, state_uri = report_uris(store_uri)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    get_store(parquet_uri).write_bytes(parquet_uri, buffer.getvalue(), "application/vnd.apache.parquet")
    get_store(state_uri).write_bytes(state_uri, json.dumps(state).encode(), "application/json")
    return parquet_uri


def ui_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the UI shows: failing models first, then the most recently validated, at most ``UI_ROWS``."""
    if frame.empty:
        return frame[COLUMNS]
    ordered = frame.assign(_ok=frame["status"] == "success").sort_values(
        ["_ok", "last_validated"], ascending=[True, False])
    return ordered[COLUMNS].head(UI_ROWS).drop(columns=["partition"])


@asset(name=REPORT_ASSET, group_name="reports", kinds={"pandas", "parquet"}, deps=watched_keys(),
       description="One row per model across every validator: status, failed checks and assertions, key values, "
                   "last validated. Refreshed after validation runs by report_sensor; the full table is parquet in "
                   "the store.")
def validation_report(context: AssetExecutionContext, settings: ValidibotSettings) -> MaterializeResult:
    frame, state, read = refresh(context.instance, settings.store_uri)
    parquet_uri = save(settings.store_uri, frame, state)
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    failing = int((~frame["status"].isin(["success", "pending"])).sum()) if not frame.empty else 0
    shown = ui_table(frame)
    return MaterializeResult(metadata={
        "models": len(frame), "failing": failing,
        "status_counts": MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
        "report": frame_table(shown),
        "rows_shown": MetadataValue.text(f"{len(shown)} of {len(frame)} (failing first; all in the parquet file)"),
        "parquet_uri": MetadataValue.url(parquet_uri),
        "events_read": read, "dagster/row_count": len(frame),
    })
