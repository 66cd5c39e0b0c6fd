"""The meshing validator's registration: what it accepts, how it is checked, run, shown and demonstrated."""

from __future__ import annotations

import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

from validibot_pipelines.validators.mesh import launch
from validibot_pipelines.validators.mesh.envelopes import MIME_STEP, MIME_STL
from validibot_pipelines.validators.mesh.intake import MeshLimits, check_cad, looks_complete
from validibot_pipelines.validators.registry import Validator

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def limits(settings: Any) -> MeshLimits:
    return MeshLimits() if settings is None else MeshLimits(max_bytes=settings.mesh_max_bytes)


def engine_versions() -> list[str]:
    """The installed Gmsh's version (read without loading Gmsh in the control plane)."""
    return [f"gmsh@{version('gmsh')}"]


def demo_samples(landing: Path, _copies: int) -> list[Path]:
    """A cylinder with a hole, generated once (STEP files carry a timestamp: new bytes every time)."""
    from validibot_pipelines.validators.mesh.samples import make_part

    step = landing / "cylinder_with_hole.step"
    if not step.exists():
        make_part("cylinder_with_hole", landing)
        shutil.copyfile(SAMPLES_DIR / "cylinder_with_hole.validation.yaml", landing / f"{step.name}.validation.yaml")
    return [step]


def _assets() -> list[Any]:
    from validibot_pipelines.validators.mesh.assets import ASSETS

    return ASSETS


VALIDATOR = Validator(
    name="mesh", suffixes={".step": MIME_STEP, ".stp": MIME_STEP, ".stl": MIME_STL},
    partitions_attr="mesh_partitions", intake_asset="cad_file",
    job_description="Intake → preview surface mesh → quality-scored volume mesh → checks for one STEP/STL part "
                    "(partition = its SHA-256)",
    steps=(launch.PREVIEW_VALIDATOR, launch.MESH_VALIDATOR), check=check_cad, limits=limits, assets=_assets,
    looks_complete=looks_complete, validate=launch.validate_in_process, summary=launch.summary,
    demo_samples=demo_samples,
    engine_versions=engine_versions,
    key_values=("total_elements", "sicn_min", "strategy"),
    artifact_slots=300,  # the preview, then .msh + result + quality per volume: assemblies of ~100 volumes
)
