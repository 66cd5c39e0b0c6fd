"""The single Definitions object for the code location (loaded by ``dagster dev`` via workspace.yaml)."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import Definitions

from validibot_pipelines.assets.energyplus import energyplus_model, energyplus_simulation
from validibot_pipelines.assets.fmi import fmu_intake, fmu_probe, fmu_simulation
from validibot_pipelines.assets.mesh import cad_file, preview_mesh, volume_mesh
from validibot_pipelines.assets.specs import SPEC_SOURCES
from validibot_pipelines.jobs import energyplus_validation_job, fmi_validation_job, mesh_validation_job
from validibot_pipelines.operations.alerts import failed_validation_alerts, run_failure_alerts
from validibot_pipelines.operations.lineage import with_operations
from validibot_pipelines.operations.nightly import nightly_revalidation, nightly_schedule
from validibot_pipelines.resources import ValidibotSettings
from validibot_pipelines.resources.backends.select import make_backend
from validibot_pipelines.resources.io_manager import StoreIOManager
from validibot_pipelines.sensors.docker_sweep import docker_orphan_sweep
from validibot_pipelines.sensors.outputs import output_sensor
from validibot_pipelines.sensors.uploads import upload_sensor
from validibot_pipelines.storage import join_uri


def build_defs(settings: ValidibotSettings | None = None, fmi_backend: object | None = None,
               energyplus_backend: object | None = None, mesh_backend: object | None = None,
               code_versions: Mapping[str, str] | None = None) -> Definitions:
    """Definitions with explicit settings/backends (tests and the demo point them at their own folders).

    Backends not given are chosen per validator by ``VALIDIBOT_<VALIDATOR>_BACKEND`` (resources/backends/select.py).
    ``code_versions`` overrides a validator group's derived code version (tests simulate a new release).
    Asset values live in the object store (``StoreIOManager``), so a run the output sensor requests for one
    asset, a batched backfill run, or a run in another container can all load their upstream values.
    """
    settings = settings or ValidibotSettings()
    validator_assets = [fmu_intake, fmu_probe, fmu_simulation, energyplus_model, energyplus_simulation,
                        cad_file, preview_mesh, volume_mesh]
    return Definitions(
        assets=[*SPEC_SOURCES.values(), *with_operations(validator_assets, code_versions)],
        jobs=[fmi_validation_job, energyplus_validation_job, mesh_validation_job, nightly_revalidation],
        schedules=[nightly_schedule],
        sensors=[upload_sensor, output_sensor, docker_orphan_sweep, run_failure_alerts, failed_validation_alerts],
        resources={
            "settings": settings,
            "io_manager": StoreIOManager(base_uri=join_uri(settings.store_uri, "dagster-io")),
            "fmi_backend": fmi_backend or make_backend("fmi"),
            "energyplus_backend": energyplus_backend or make_backend("energyplus"),
            "mesh_backend": mesh_backend or make_backend("mesh"),
        },
    )


defs = build_defs()
