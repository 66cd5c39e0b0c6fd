"""Validator type → runner, from each registered validator's ``worker/RUNNERS`` (:mod:`validibot_pipelines.validators`).

Runner modules are imported only when their type runs, so a worker image needs only its own validator's tools.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.validators import worker_runners


def runner_for(validator_type: str) -> Callable[[RunContext], None]:
    runners = worker_runners()
    target = runners.get(validator_type)
    if target is None:
        raise ValueError(f"unknown validator type {validator_type!r}; known: {', '.join(sorted(runners))}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
