"""Validator type → runner. Imports are lazy so a worker image only needs the tools of its validator."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from validibot_pipelines.runtime.context import RunContext

RUNNERS: dict[str, str] = {
    "fmi-probe": "validibot_pipelines.runtime.fmi.probe:run",
    "fmi-simulation": "validibot_pipelines.runtime.fmi.simulate:run",
    "energyplus": "validibot_pipelines.runtime.energyplus.simulate:run",
    "mesh-preview": "validibot_pipelines.runtime.mesh.preview:run",
    "mesh": "validibot_pipelines.runtime.mesh.volume:run",
}


def runner_for(validator_type: str) -> Callable[[RunContext], None]:
    target = RUNNERS.get(validator_type)
    if target is None:
        raise ValueError(f"unknown validator type {validator_type!r}; known: {', '.join(sorted(RUNNERS))}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
