"""The single Definitions object for the code location (loaded by ``dagster dev`` via workspace.yaml)."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import Definitions, in_process_executor

from validibot_pipelines.assets.report import validation_report
from validibot_pipelines.assets.specs import SPEC_SOURCES
from validibot_pipelines.jobs import JOBS_BY_KIND
from validibot_pipelines.operations.alerts import failed_validation_alerts, run_failure_alerts
from validibot_pipelines.operations.lineage import with_operations
from validibot_pipelines.operations.nightly import nightly_revalidation, nightly_schedule
from validibot_pipelines.resources import ValidibotSettings
from validibot_pipelines.resources.backends.select import make_backend
from validibot_pipelines.resources.io_manager import StoreIOManager
from validibot_pipelines.sensors.docker_sweep import docker_orphan_sweep
from validibot_pipelines.sensors.outputs import output_sensor
from validibot_pipelines.sensors.report import report_job, report_sensor
from validibot_pipelines.sensors.uploads import upload_sensor
from validibot_pipelines.storage import join_uri
from validibot_pipelines.validators.registry import validators


def build_defs(settings: ValidibotSettings | None = None, code_versions: Mapping[str, str] | None = None,
               **backends: object) -> Definitions:
    """Definitions with explicit settings/backends (tests and the demo point them at their own folders).

    ``backends`` are ``<validator>_backend=...`` (e.g. ``fmi_backend=DockerBackend(...)``); those not given are
    chosen per validator by ``VALIDIBOT_<VALIDATOR>_BACKEND`` (resources/backends/select.py).
    ``code_versions`` overrides a validator group's derived code version (tests simulate a new release).
    Asset values live in the object store (``StoreIOManager``), so a run the output sensor requests for one
    asset, a batched backfill run, or a run in another container can all load their upstream values.
    """
    settings = settings or ValidibotSettings()
    known = {v.backend_resource for v in validators()}
    unknown = sorted(set(backends) - known)
    if unknown:
        raise TypeError(f"build_defs: no validator uses {', '.join(unknown)}; backends: {', '.join(sorted(known))}")
    validator_assets = [asset for v in validators() for asset in v.assets()]
    return Definitions(
        assets=[*SPEC_SOURCES.values(), *with_operations(validator_assets, code_versions), validation_report],
        jobs=[*JOBS_BY_KIND.values(), nightly_revalidation, report_job],
        schedules=[nightly_schedule],
        sensors=[upload_sensor, output_sensor, docker_orphan_sweep, run_failure_alerts, failed_validation_alerts,
                 report_sensor],
        # Every job in one process, backfills and the nightly re-validation included (jobs.py says why).
        executor=in_process_executor,
        resources={
            "settings": settings,
            "io_manager": StoreIOManager(base_uri=join_uri(settings.store_uri, "dagster-io")),
            **{v.backend_resource: backends.get(v.backend_resource) or make_backend(v.name) for v in validators()},
        },
    )


defs = build_defs()
