"""The FMI validator's registration: what it accepts, how it is checked, run, shown and demonstrated."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from validibot_pipelines.orchestration.models import MIME_CSV
from validibot_pipelines.validators.fmi import launch
from validibot_pipelines.validators.fmi.attach import attach
from validibot_pipelines.validators.fmi.envelopes import MIME_FMU
from validibot_pipelines.validators.fmi.intake import FmuLimits, check_fmu, looks_complete
from validibot_pipelines.validators.fmi.settings import FMI_CACHE_VOLUME, FMI_TEST_FLAG
from validibot_pipelines.validators.registry import Validator


def limits(settings: Any) -> FmuLimits:
    if settings is None:
        return FmuLimits()
    return FmuLimits(max_bytes=settings.fmu_max_bytes, max_uncompressed_bytes=settings.fmu_max_uncompressed_bytes,
                     max_ratio=settings.fmu_max_ratio)


def demo_samples(landing: Path, copies: int) -> list[Path]:
    """The good sample FMUs, built from their C sources, each with its sidecar spec."""
    from validibot_pipelines.validators.fmi.samples.build import GOOD_SAMPLES, SAMPLES_DIR, build_fmu

    dropped = []
    for name in GOOD_SAMPLES:
        for i in range(copies):
            fmu = build_fmu(name, landing, variant=f"copy{i}" if copies > 1 else None)
            shutil.copyfile(SAMPLES_DIR / f"{name}.validation.yaml", fmu.with_name(fmu.name + ".validation.yaml"))
            dropped.append(fmu)
    return dropped


def _assets() -> list[Any]:
    from validibot_pipelines.validators.fmi.assets import ASSETS

    return ASSETS


VALIDATOR = Validator(
    name="fmi", suffixes={".fmu": MIME_FMU}, partitions_attr="fmu_partitions", intake_asset="fmu_intake",
    job_description="Intake → probe → simulation → CEL checks for one FMU (partition = its SHA-256)",
    steps=(launch.PROBE_VALIDATOR, launch.SIMULATION_VALIDATOR), check=check_fmu, limits=limits,
    looks_complete=looks_complete, assets=_assets, validate=launch.validate_in_process, summary=launch.summary,
    demo_samples=demo_samples, attach=attach, side_files={".csv": MIME_CSV},
    modal_cache_volume=FMI_CACHE_VOLUME, modal_test_flag=FMI_TEST_FLAG,
    key_values=("fmi_version", "interface", "simulation_time_reached"),
)
