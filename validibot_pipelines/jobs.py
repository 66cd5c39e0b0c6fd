"""One validation job per registered validator, over its asset group and checks."""

from typing import Any

from dagster import AssetSelection, define_asset_job

from validibot_pipelines.validators.registry import Validator, validators


def validation_job(validator: Validator) -> Any:  # an unresolved asset job
    return define_asset_job(validator.job_name, selection=AssetSelection.groups(validator.name),
                            description=validator.job_description)


JOBS_BY_KIND = {v.name: validation_job(v) for v in validators()}

# The asset whose run config carries the upload's URIs (see assets.intake.IntakeConfig).
INTAKE_ASSET_BY_KIND = {v.name: v.intake_asset for v in validators()}
