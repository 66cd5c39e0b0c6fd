"""The main job end-to-end on the embedded default (``validibot demo``).

SQLite Dagster instance under ``$DAGSTER_HOME`` (default ``.validibot/dagster_home``), local-folder landing zone
and object store under ``.validibot/``, local-subprocess backend. Writes every validator's demo samples (from
its ``samples/``: FMUs built from C, an IDF, a STEP part, an XML document, …) with their specs into the landing
zone, lets the upload sensor register and run them through Dagster, and prints a summary per model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from validibot_pipelines.local_runner import RunOutcome
from validibot_pipelines.settings import validibot_home

INSTANCE_YAML = """\
# written by `validibot demo`: the embedded default (SQLite storage under this folder)
telemetry:
  enabled: false
instance_class:  # Dagster's SQLite storage, its event log's engines kept: orchestration/event_log.py
  module: validibot_pipelines.orchestration.event_log
  class: ValidibotInstance
"""


def prepare_home() -> Path:
    home = validibot_home()
    os.environ.setdefault("VALIDIBOT_HOME", str(home))
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return home


def drop_samples(landing: Path, copies: int = 1) -> list[Path]:
    """Every registered validator's demo samples (each with its sidecar spec) into the landing zone."""
    from validibot_pipelines.validators.registry import validators

    landing.mkdir(parents=True, exist_ok=True)
    # One folder per validator, so the partitions read as paths (``fmi/first_order_lag.fmu``), as uploads do.
    dropped = []
    for validator in validators():
        (landing / validator.name).mkdir(parents=True, exist_ok=True)
        dropped += validator.demo_samples(landing / validator.name, copies)
    return dropped


def summarize(outcome: RunOutcome) -> str:
    """One model's result: its file, verdict and run, the validator's own summary lines, assertions, failed checks."""
    from validibot_pipelines.envelopes import OutputEnvelope
    from validibot_pipelines.orchestration.models import kind_of
    from validibot_pipelines.orchestration.names import model_path
    from validibot_pipelines.validators.registry import get

    validator = get(kind_of(outcome.source_uri.rsplit("/", 1)[-1])[0])
    intake = outcome.outputs.get(validator.intake_asset) or {}
    order = [key.path[-1] for asset in validator.assets() for key in asset.keys]
    steps = [outcome.outputs[name] for name in order if name in outcome.outputs and name != validator.intake_asset]
    last = steps[-1] if steps else {}
    status = last.get("status") or intake.get("status") or "not run"
    lines = [f"{model_path(outcome.partition_key)}  [{status}]  (Dagster run {outcome.run_id[:8]})",
             f"  sha256   {intake.get('sha256', '-')}  (this version; the partition is the model's name)"]
    if last:
        lines += validator.summary(OutputEnvelope.model_validate({k: v for k, v in last.items() if k != "assertions"}))
    for result in last.get("assertions", []):
        lines.append(f"  {'PASS' if result['passed'] else 'FAIL'}     {result['name']} "
                     f"({result['severity']}): {result['expr']}" + (f" — {result['error']}" if result["error"] else ""))
    for name, (passed, description) in sorted(outcome.checks.items()):
        if not passed:
            lines.append(f"  check {name} failed: {description}")
    return "\n".join(lines)


def run_demo(copies: int = 1) -> int:
    home = prepare_home()
    import warnings

    from dagster import DagsterInstance, PreviewWarning

    warnings.filterwarnings("ignore", category=PreviewWarning)

    from validibot_pipelines.definitions import build_defs

    landing = home / "landing"
    dropped = drop_samples(landing, copies)
    print(f"dropped {len(dropped)} sample model(s) into {landing}")
    instance = DagsterInstance.get()
    from validibot_pipelines.operations.migrate import legacy_message

    old = legacy_message(instance)
    if old:
        print(f"note: {old}")
    defs = build_defs()
    outcomes = drain(defs, instance)
    outcomes += revalidate_unchanged(defs, instance, dropped, outcomes, landing)
    print(f"validated {len(outcomes)} model(s); Dagster instance at {os.environ['DAGSTER_HOME']}\n")
    for outcome in outcomes:
        print(summarize(outcome) + "\n")
    print(report(defs, instance))
    return verdict(outcomes, dropped, landing)


def report(defs: Any, instance: Any) -> str:
    """Materialize ``validation_report`` (the daemon's ``report_sensor`` does this after runs) and say where."""
    from validibot_pipelines.assets.report import REPORT_ASSET
    from validibot_pipelines.sensors.report import report_job

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = defs.resolve_job_def(report_job.name).execute_in_process(instance=instance, raise_on_error=False,
                                                                      run_config=quiet)
    if not result.success:
        return f"{REPORT_ASSET}: the report run {result.run_id[:8]} failed; see `dagster dev` → Runs"
    meta = result.asset_materializations_for_node(REPORT_ASSET)[0].metadata
    return (f"{REPORT_ASSET} (group reports): {meta['models'].value} model(s), {meta['failing'].value} failing; "
            f"parquet at {meta['parquet_uri'].value}\n")


def drain(defs: Any, instance: Any, max_ticks: int = 1000) -> list[RunOutcome]:
    """Tick the upload sensor until the landing zone is drained.

    Why not "until a tick runs nothing": a tick can handle only stray files (50 unknown files, a symlink) and
    request no run while the models wait in the next batch, and a model still being written waits for the
    settle time. So keep ticking while the sensor's cursor moves, and wait out the settle time once more.
    """
    from validibot_pipelines.local_runner import _cursor_key, tick
    from validibot_pipelines.sensors.landing import settle_seconds

    key = _cursor_key("upload_sensor")
    outcomes: list[RunOutcome] = []
    waited = False
    for _ in range(max_ticks):
        before = instance.run_storage.get_cursor_values({key}).get(key)
        batch = tick(defs, instance, log_level="WARNING")
        outcomes.extend(batch)
        if batch or instance.run_storage.get_cursor_values({key}).get(key) != before:
            continue
        if waited:
            break
        waited = True  # nothing moved: give files still being written one settle period, then look again
        time.sleep(settle_seconds() + 0.1)
    return outcomes


def revalidate_unchanged(defs: Any, instance: Any, dropped: list[Path], outcomes: list[RunOutcome],
                         landing: Path) -> list[RunOutcome]:
    """Run again the dropped samples the sensor did not announce because identical bytes were validated before.

    Why: running the demo a second time should show results again, not "nothing validated". The sensor is
    right not to re-announce identical uploads (its run keys dedupe them); the demo asks for fresh runs itself.
    """
    from validibot_pipelines.jobs import JOBS_BY_KIND
    from validibot_pipelines.local_runner import run_partition
    from validibot_pipelines.orchestration.models import kind_of
    from validibot_pipelines.orchestration.names import key_for_upload
    from validibot_pipelines.runtime.context import file_sha256
    from validibot_pipelines.sensors.uploads import intake_run_config

    landing_uri = landing.resolve().as_uri()
    announced = {o.source_uri.rsplit("/", 1)[-1] for o in outcomes}
    again = []
    for path in dropped:
        found = kind_of(path.name)
        if path.name in announced or found is None:
            continue
        kind = found[0]
        spec = path.with_name(path.name + ".validation.yaml")
        again.append(run_partition(
            defs, instance, JOBS_BY_KIND[kind].name, key_for_upload(landing_uri, path.as_uri()), log_level="WARNING",
            run_config=intake_run_config(kind, path.as_uri(), spec.as_uri() if spec.exists() else None,
                                         file_sha256(path)),
            tags={"validibot/source_uri": path.as_uri(), "validibot/kind": kind}))
    if again:
        print(f"re-validated {len(again)} unchanged sample(s): the sensor does not announce identical uploads twice")
    return again


def verdict(outcomes: list[RunOutcome], dropped: list[Path], landing: Path) -> int:
    """0 only when something was validated and everything validated passed; else 1, saying why and what to do."""
    failed = [o for o in outcomes if not (o.success and all(p for p, _ in o.checks.values()))]
    if not outcomes:
        print(f"nothing was validated: none of the {len(dropped)} sample model(s) in {landing} could be taken in "
              "(see the warnings above); to start over, "
              "delete the demo's folder (VALIDIBOT_HOME, default .validibot/) or point VALIDIBOT_HOME at an empty "
              "one and run `validibot demo` again")
        return 1
    if failed:
        names = ", ".join(o.source_uri.rsplit("/", 1)[-1][:80] for o in failed[:10])
        print(f"{len(failed)} of {len(outcomes)} validation(s) failed ({names}); see the findings above")
        return 1
    print("all validations passed")
    return 0
