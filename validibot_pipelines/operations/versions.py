"""Code versions of the validator assets, derived from the validator versions the control plane sends.

A validator's ``code_version`` changes when its ``ValidatorRef.version`` (the package version today) or its
engine changes (EnergyPlus); Dagster then marks every partition of the group stale and the nightly
re-validation re-runs them. A validator without an entry here falls back to the package version.
"""

from __future__ import annotations

from collections.abc import Callable

from validibot_pipelines import __version__


def _fmi() -> list[str]:
    from validibot_pipelines.orchestration.fmi import PROBE_VALIDATOR, SIMULATION_VALIDATOR

    return [f"{v.id}@{v.version}" for v in (PROBE_VALIDATOR, SIMULATION_VALIDATOR)]


def _energyplus() -> list[str]:
    from validibot_pipelines.orchestration.energyplus import VALIDATOR
    from validibot_pipelines.runtime.energyplus.install import engine_version

    return [f"{VALIDATOR.id}@{VALIDATOR.version}", f"engine@{engine_version()}"]


def _mesh() -> list[str]:
    from importlib.metadata import version  # the installed Gmsh's version, without loading it here

    from validibot_pipelines.orchestration.mesh import MESH_VALIDATOR, PREVIEW_VALIDATOR

    return [f"{v.id}@{v.version}" for v in (PREVIEW_VALIDATOR, MESH_VALIDATOR)] + [f"gmsh@{version('gmsh')}"]


VERSION_PARTS: dict[str, Callable[[], list[str]]] = {"fmi": _fmi, "energyplus": _energyplus, "mesh": _mesh}


def validator_code_version(group: str) -> str:
    """e.g. ``fmi-probe@0.1.0+fmi-simulation@0.1.0`` — recorded on every materialization of the group."""
    parts = VERSION_PARTS.get(group, lambda: [f"{group}@{__version__}"])()
    return "+".join(parts)
