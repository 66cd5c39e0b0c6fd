"""The EnergyPlus validator's registration: what it accepts, how it is checked, run, shown and demonstrated."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from validibot_pipelines.validators.energyplus import launch
from validibot_pipelines.validators.energyplus.attach import attach
from validibot_pipelines.validators.energyplus.envelopes import MIME_EPJSON, MIME_EPW, MIME_IDF, MIME_IMF
from validibot_pipelines.validators.energyplus.intake import EnergyPlusLimits, check_energyplus, looks_complete
from validibot_pipelines.validators.registry import Validator


def limits(settings: Any) -> EnergyPlusLimits:
    if settings is None:
        return EnergyPlusLimits()
    return EnergyPlusLimits(max_bytes=settings.energyplus_max_bytes, file_max_bytes=settings.energyplus_file_max_bytes)


def engine_versions() -> list[str]:
    """The engine is part of the code version: a new EnergyPlus makes every model's result stale."""
    from validibot_pipelines.validators.energyplus.worker.install import engine_version

    return [f"engine@{engine_version()}"]


def demo_samples(landing: Path, _copies: int) -> list[Path]:
    """The one-zone box IDF with its spec (copied once: identical bytes would only re-announce it)."""
    from validibot_pipelines.validators.energyplus.samples import HERE, sample_idf

    idf = landing / "one_zone_box.idf"
    if not idf.exists():
        shutil.copyfile(sample_idf("one_zone_box"), idf)
        shutil.copyfile(HERE / "one_zone_box.validation.yaml", landing / "one_zone_box.idf.validation.yaml")
    return [idf]


def _assets() -> list[Any]:
    from validibot_pipelines.validators.energyplus.assets import ASSETS

    return ASSETS


VALIDATOR = Validator(
    name="energyplus", suffixes={".idf": MIME_IDF, ".epjson": MIME_EPJSON, ".imf": MIME_IMF},
    partitions_attr="energyplus_partitions", intake_asset="energyplus_model",
    job_description="Intake → EnergyPlus simulation → CEL checks for one IDF/epJSON model (partition = its SHA-256)",
    steps=(launch.VALIDATOR,), check=check_energyplus, limits=limits, looks_complete=looks_complete,
    assets=_assets, validate=launch.validate_in_process, summary=launch.summary, demo_samples=demo_samples,
    attach=attach, side_files={".epw": MIME_EPW, ".inc": "text/plain"},  # .inc: files an .imf model includes
    engine_versions=engine_versions,
    key_values=("energyplus_version", "site_eui_kwh_m2", "severe_errors"),
)
