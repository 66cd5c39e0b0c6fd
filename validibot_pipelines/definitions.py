"""The single Definitions object for the code location (loaded by ``dagster dev`` via workspace.yaml)."""

from __future__ import annotations

from dagster import Definitions, FilesystemIOManager

from validibot_pipelines.assets.energyplus import energyplus_model, energyplus_simulation
from validibot_pipelines.assets.fmi import fmu_intake, fmu_probe, fmu_simulation
from validibot_pipelines.assets.mesh import cad_file, preview_mesh, volume_mesh
from validibot_pipelines.jobs import energyplus_validation_job, fmi_validation_job, mesh_validation_job
from validibot_pipelines.resources import ValidibotSettings
from validibot_pipelines.resources.backends.select import make_backend
from validibot_pipelines.sensors.docker_sweep import docker_orphan_sweep
from validibot_pipelines.sensors.outputs import output_sensor
from validibot_pipelines.sensors.uploads import upload_sensor


def build_defs(settings: ValidibotSettings | None = None, fmi_backend: object | None = None,
               energyplus_backend: object | None = None, mesh_backend: object | None = None) -> Definitions:
    """Definitions with explicit settings/backends (tests and the demo point them at their own folders).

    Backends not given are chosen per validator by ``VALIDIBOT_<VALIDATOR>_BACKEND`` (resources/backends/select.py).
    The IO manager is the filesystem one (the default in production) named explicitly, so a run the output
    sensor requests for one asset can load its upstream values in ``execute_in_process`` too.
    """
    return Definitions(
        assets=[fmu_intake, fmu_probe, fmu_simulation, energyplus_model, energyplus_simulation,
                cad_file, preview_mesh, volume_mesh],
        jobs=[fmi_validation_job, energyplus_validation_job, mesh_validation_job],
        sensors=[upload_sensor, output_sensor, docker_orphan_sweep],
        resources={
            "settings": settings or ValidibotSettings(),
            "fmi_backend": fmi_backend or make_backend("fmi"),
            "energyplus_backend": energyplus_backend or make_backend("energyplus"),
            "mesh_backend": mesh_backend or make_backend("mesh"),
            "io_manager": FilesystemIOManager(),
        },
    )


defs = build_defs()
