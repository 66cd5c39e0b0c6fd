"""One validation job per validator kind, each over its asset group and checks."""

from dagster import AssetSelection, define_asset_job

fmi_validation_job = define_asset_job(
    "fmi_validation", selection=AssetSelection.groups("fmi"),
    description="Intake → probe → simulation → CEL checks for one FMU (partition = its SHA-256)",
)

energyplus_validation_job = define_asset_job(
    "energyplus_validation", selection=AssetSelection.groups("energyplus"),
    description="Intake → EnergyPlus simulation → CEL checks for one IDF/epJSON model (partition = its SHA-256)",
)

mesh_validation_job = define_asset_job(
    "mesh_validation", selection=AssetSelection.groups("mesh"),
    description="Intake → preview surface mesh → quality-scored volume mesh → checks for one STEP/STL part "
                "(partition = its SHA-256)",
)

JOBS_BY_KIND = {"fmi": fmi_validation_job, "energyplus": energyplus_validation_job, "mesh": mesh_validation_job}

# The asset whose run config carries the upload's URIs (see FmuIntakeConfig).
INTAKE_ASSET_BY_KIND = {"fmi": "fmu_intake", "energyplus": "energyplus_model", "mesh": "cad_file"}
