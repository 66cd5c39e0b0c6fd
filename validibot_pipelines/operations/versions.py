"""Code versions of the validator assets, derived from the validator versions the control plane sends.

A validator's ``code_version`` changes when one of its steps' ``ValidatorRef.version`` (the package version
today) or its engine changes (e.g. EnergyPlus, Gmsh); Dagster then marks every partition of the group stale and
the nightly re-validation re-runs them. A group that is no registered validator falls back to the package version.
"""

from __future__ import annotations

from validibot_pipelines import __version__


def validator_code_version(group: str) -> str:
    """e.g. ``fmi-probe@0.1.0+fmi-simulation@0.1.0`` — recorded on every materialization of the group."""
    from validibot_pipelines.validators.registry import get

    try:
        return get(group).code_version()
    except KeyError:
        return f"{group}@{__version__}"
