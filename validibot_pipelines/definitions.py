"""The single Definitions object for the code location (loaded by ``dagster dev`` via workspace.yaml)."""

from dagster import Definitions

from validibot_pipelines.assets.fmi import fmu_intake, fmu_probe, fmu_simulation
from validibot_pipelines.jobs import fmi_validation_job
from validibot_pipelines.resources import LocalSubprocessBackend, ValidibotSettings
from validibot_pipelines.sensors.uploads import upload_sensor

defs = Definitions(
    assets=[fmu_intake, fmu_probe, fmu_simulation],
    jobs=[fmi_validation_job],
    sensors=[upload_sensor],
    resources={"settings": ValidibotSettings(), "fmi_backend": LocalSubprocessBackend()},
)
