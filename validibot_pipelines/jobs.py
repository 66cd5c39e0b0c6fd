"""One validation job per registered validator, over its asset group and checks."""

from typing import Any

from dagster import AssetSelection, define_asset_job, in_process_executor

from validibot_pipelines.validators.registry import Validator, validators


def validation_job(validator: Validator) -> Any:  # an unresolved asset job
    """The validator's job, run in one process: its steps only write envelopes and wait for workers — the
    untrusted work already runs in the worker's sandbox — so a process per step would add start-up time (a
    few seconds per model for a 5 ms simulation) and no isolation."""
    return define_asset_job(validator.job_name, selection=AssetSelection.groups(validator.name),
                            description=validator.job_description, executor_def=in_process_executor)


JOBS_BY_KIND = {v.name: validation_job(v) for v in validators()}

# The asset whose run config carries the upload's URIs (see assets.intake.IntakeConfig).
INTAKE_ASSET_BY_KIND = {v.name: v.intake_asset for v in validators()}
